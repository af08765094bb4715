"""What every route module of the partner API is given: settings, the pusher's config, and
connections to the webhook state."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

from newswire.config import Settings
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.dialect import Db

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    settings: Settings
    config: WebhookConfig

    @contextlib.contextmanager
    def db(self) -> Iterator[Db]:
        """A connection to the state (created or upgraded first), closed after the block."""
        db = store.connect(self.settings)
        try:
            yield db
        finally:
            db.close()

    async def run(self, work: Callable[[Db], T]) -> T:
        """``work(db)`` in a worker thread with a connection of its own (SQL blocks)."""
        def call() -> T:
            with self.db() as db:
                return work(db)
        return await asyncio.get_running_loop().run_in_executor(None, call)
