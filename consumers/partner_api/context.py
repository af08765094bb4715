"""What every route module of the partner API is given: settings, the pusher's config, and
connections to the webhook state (kept open between requests: a PostgreSQL connection costs
more to open than the queries of a request take)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from aiohttp import web

from newswire.config import Settings
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.dialect import Db

T = TypeVar("T")

#: what :mod:`.auth` puts on a request: the caller's partner (the only one a handler may serve)
#: and the token it came with; what the audit row says a call did; the page's sign-in and session
PARTNER_ID = web.RequestKey("partner_id", str)
TOKEN_ID = web.RequestKey("token_id", str)
AUDIT = web.RequestKey("audit", str)
SIGNED_IN = web.RequestKey("signed_in", Any)
SESSION = web.RequestKey("session", tuple)


class Context:
    def __init__(self, settings: Settings, config: WebhookConfig):
        self.settings = settings
        self.config = config
        self.state = store.AsyncStore(settings)

    async def run(self, work: Callable[[Db], T]) -> T:
        """``work(db)`` in a worker thread with a connection of its own (SQL blocks)."""
        return await self.state.run(work)

    def close(self) -> None:
        self.state.close()
