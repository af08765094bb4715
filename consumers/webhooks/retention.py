"""Retention of the webhook state: what was delivered is forgotten once it is older than
``NEWSWIRE_WEBHOOK_KEEP`` (90 days by default; ``forever`` keeps it), so that years of stories
to thousands of partners do not fill the state. Every pusher prunes in a thread of its own
(:class:`Retention`, every ``NEWSWIRE_WEBHOOK_PRUNE_EVERY`` seconds, hourly by default);
``newswire deliveries prune`` does it by hand. What is deleted and what is
kept whatever its age: :func:`.outbox.prune`.

Kafka keeps every event for ever, so a story older than the window is still there for a
backfill (``newswire replay``, the partner API's backfill), under new sequence numbers.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from newswire import logs
from newswire.config import Settings
from newswire.consumers.webhooks import outbox, store

log = logs.get(__name__)

class Retention:
    """Prunes what was delivered more than ``keep_s`` ago, every ``every_s`` (the first time
    ``every_s`` after :meth:`start`), in a daemon thread
    with its own connection, until :meth:`stop`. Several pushers sharing a PostgreSQL state
    each prune; their deletes are of the same rows, so what one deleted the other skips."""

    def __init__(self, settings: Settings, keep_s: float, *, every_s: float,
                 clock: Callable[[], float] = time.time):
        self._settings, self._keep_s, self._every_s, self._clock = settings, keep_s, every_s, clock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks-retention", daemon=True)

    def start(self) -> "Retention":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self._every_s):
            try:
                db = store.connect(self._settings, synchronous="NORMAL")
                try:
                    outbox.prune(db, self._clock() - self._keep_s, rest=self._rest)
                finally:
                    db.close()
            except Exception:  # noqa: BLE001 - a thread's boundary: the next pass tries again, the pusher goes on
                log.exception("webhook_state_prune_failed")

    def _rest(self, seconds: float) -> bool:
        """:func:`.outbox.rest_as_long`, cut short by :meth:`stop` (then the prune stops)."""
        return not self._stopping.wait(min(seconds, outbox.REST_MAX_S))

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)
