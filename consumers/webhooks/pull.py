"""The pull transport: a partner fetches its deliveries instead of having them pushed, with the
same cursor in both transports, its sequence numbers.

A pull partner's deliveries are queued as a push partner's are (:func:`.outbox.enqueue`, its
numbers, bodies and rules); the dispatcher only leaves them alone. The partner asks for a page
(:func:`changes`): every delivery it has not acknowledged that may go now, lowest number first,
each with the body and the signed headers a push would carry. Asking with ``after=N``
acknowledges every delivery numbered up to N that a pull handed it (:func:`.outbox.acknowledge_pulled`:
delivered, with a receipt marked ``via`` pull). So:

- push → pull: the first page starts at the first delivery not delivered (also one in flight or
  being retried by the pusher at the switch: it may come twice, under one number and webhook-id);
- pull → push: the dispatcher sends from the first delivery not acknowledged (a page handed out
  and not acknowledged comes again by push, under the same numbers);
- what may go now is what the pusher would send: an embargoed story the partner is not entitled
  to waits for its time, and with it the later versions of that story; a strict partner's page
  stops at it (:mod:`.ordering`). A number that comes later than higher ones is such a story; a
  number above ``after`` that was never handed out is never acknowledged by it.

Long polls (:class:`Watch`) wait for the next delivery queued for the partner (seen by one look
at the outbox per interval for every waiting client of the process on SQLite, told by each
enqueue's commit on PostgreSQL), or for the embargo time of the first delivery held back,
whichever comes first.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import psycopg

from newswire import logs
from newswire.consumers.webhooks import outbox, payloads, signing, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import Network
from newswire.consumers.webhooks.dialect import Db
from newswire.consumers.webhooks.partners import Partner

log = logs.get(__name__)

#: the most a page holds, and the longest a long poll waits (seconds)
MAX_LIMIT = 1000
MAX_WAIT_S = 30.0
#: how often a waiting process looks for new deliveries (seconds)
WATCH_S = 0.1


class NotPulling(LookupError):
    """The partner is not in pull mode (a pull would hand out what the pusher sends), or is
    disabled; ``field`` names which (``mode``, ``enabled``)."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field = field


@dataclass(frozen=True)
class Change:
    """One delivery as a pull hands it out: what a push would have carried."""

    seq: int
    event_id: str
    article_id: str
    version: int
    event_type: str
    content_type: str
    headers: dict[str, str]
    body: bytes

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "event_id": self.event_id, "article_id": self.article_id,
                "version": self.version, "event_type": self.event_type, "content_type": self.content_type,
                "headers": self.headers, "body": self.body.decode("utf-8")}


@dataclass(frozen=True)
class Page:
    changes: list[Change]
    #: deliveries not acknowledged that may go now, beyond this page
    more: bool
    #: the numbers this call acknowledged
    acknowledged: list[int]
    #: when the first delivery held back (an embargo) may go, if there is one
    next_due_at: float | None

    @property
    def last_seq(self) -> int | None:
        return self.changes[-1].seq if self.changes else None


#: a delivery may go now: a pull or the pusher handed it out before, or its first time has come
#: (a delivery never tried whose time is ahead waits for an embargo to lift)
_MAY_GO = "(x.pulled_at IS NOT NULL OR x.tries > 0 OR x.next_attempt_at <= :now)"
_COLUMNS = "d.id, d.seq, d.event_id, d.article_id, d.version, d.event_type, d.content_type, d.body_id"


def _pageable(partner: Partner, limit: int, now: float, db: Db) -> list:
    """The partner's deliveries not acknowledged that may go now, lowest number first, at most
    ``limit``: per article, nothing behind a version held back; strict, nothing behind any."""
    d_may_go = _MAY_GO.replace("x.", "d.")
    if partner.strict:
        rows = db.execute(f"SELECT {_COLUMNS}, {d_may_go} AS may_go FROM deliveries d WHERE d.partner_id = :partner"
                          f" AND d.status != 'delivered' ORDER BY d.seq LIMIT :limit",
                          {"partner": partner.id, "limit": limit, "now": now}).fetchall()
        cut = next((i for i, row in enumerate(rows) if not row["may_go"]), len(rows))
        return rows[:cut]
    e_may_go = _MAY_GO.replace("x.", "e.")
    return db.execute(
        f"SELECT {_COLUMNS} FROM deliveries d WHERE d.partner_id = :partner AND d.status != 'delivered'"
        f" AND {d_may_go} AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.article_id = d.article_id"
        f" AND e.partner_id = d.partner_id AND e.status != 'delivered' AND e.seq < d.seq AND NOT {e_may_go})"
        f" ORDER BY d.seq LIMIT :limit", {"partner": partner.id, "limit": limit, "now": now}).fetchall()


def _next_due(db: Db, partner_id: str, now: float) -> float | None:
    return db.execute("SELECT min(next_attempt_at) FROM deliveries WHERE partner_id = ? AND status = 'pending'"
                      " AND tries = 0 AND pulled_at IS NULL AND next_attempt_at > ?", (partner_id, now)).fetchone()[0]


def pulling(db: Db, partner_id: str) -> Partner:
    """The partner, if a pull may hand it its deliveries; :class:`NotPulling` (or UnknownPartner) if not."""
    partner = registry.get(db, partner_id)
    if not partner.enabled:
        raise NotPulling("enabled", f"partner {partner_id!r} is disabled "
                                    f"({partner.disabled_reason or 'by an operator'}): its deliveries are held")
    if partner.pushed:
        raise NotPulling("mode", f"partner {partner_id!r} takes pushes (mode push): switch it to mode pull first")
    return partner


def changes(db: Db, partner_id: str, *, after: int | None, limit: int, now: float | None = None) -> Page:
    """Acknowledge what a pull handed the partner up to ``after``, then hand it its next page."""
    now = time.time() if now is None else now
    partner = pulling(db, partner_id)
    acknowledged = [] if after is None else outbox.acknowledge_pulled(db, partner.id, after, now)
    if acknowledged:
        log.info("pull_acknowledged", partner=partner.id, through_seq=after, count=len(acknowledged))
    rows = _pageable(partner, limit + 1, now, db)
    page, more = rows[:limit], len(rows) > limit
    if page:
        with outbox.transaction(db):
            outbox.mark_pulled(db, [row["id"] for row in page], now)
    bodies = outbox.bodies(db, {row["body_id"] for row in page})
    handed, secrets = [], partner.signing_secrets(now)
    for row in page:
        body = payloads.numbered(*bodies[row["body_id"]], row["seq"])
        handed.append(Change(row["seq"], row["event_id"], row["article_id"], row["version"], row["event_type"],
                             row["content_type"], signing.headers(row["event_id"], body, secrets,
                                                                  content_type=row["content_type"], seq=row["seq"]),
                             body))
    if handed:
        log.info("pull_handed_out", partner=partner.id, seq_from=handed[0].seq, seq_to=handed[-1].seq,
                 count=len(handed), more=more)
    return Page(handed, more, acknowledged, None if handed else _next_due(db, partner.id, now))


def switch(db: Db, partner_id: str, *, mode: str | None = None, ordering: str | None = None,
           after: int | None = None, allow: Iterable[Network] = ()) -> Partner:
    """Change how a partner takes its deliveries; ``after`` first acknowledges what its pulls
    handed it up to there (leaving pull, so that the pusher does not send that again). Back to
    push, its endpoint is checked again (``allow``: the installation's private networks)."""
    partner = registry.get(db, partner_id)
    if after is not None and not partner.pushed:
        outbox.acknowledge_pulled(db, partner_id, after, time.time())
    fields = {k: v for k, v in (("mode", mode), ("ordering", ordering)) if v is not None}
    if fields:
        partner = registry.update(db, partner_id, allow=allow, **fields)
        log.info("partner_mode_changed", partner=partner_id, mode=partner.mode, ordering=partner.ordering)
    return partner


def first_unacknowledged(db: Db, partner_id: str) -> int | None:
    """The lowest number of the partner not delivered (where either transport goes on from)."""
    return db.execute("SELECT min(seq) FROM deliveries WHERE partner_id = ? AND status != 'delivered'",
                      (partner_id,)).fetchone()[0]


def _top_id(db: Db) -> int:
    return db.execute("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()[0]


def _queued_since(db: Db, after_id: int) -> tuple[int, set[str]]:
    """The highest delivery id, and the partners queued deliveries above ``after_id``."""
    top = _top_id(db)
    if top <= after_id:
        return top, set()
    return top, {pid for (pid,) in db.execute("SELECT DISTINCT partner_id FROM deliveries WHERE id > ? AND id <= ?",
                                              (after_id, top))}


class Watch:
    """Wakes the long polls of a process when their partner gets a delivery, whatever the number
    of waiting clients.

    On SQLite, one look at the outbox every :data:`WATCH_S` while anyone waits: its one writer
    commits in id order, so the ids above the last look are what is new. On PostgreSQL writers
    take ids from a sequence and may commit out of that order (several pushers' Kafka sides, a
    replay), so a look by id would miss one committed late: a listener on
    :data:`.outbox.PULLS_CHANNEL` is told the pull partners of each enqueue as it commits.
    A poll takes :meth:`mark` before it reads its page and waits :meth:`since <wait>` it: what
    is queued in between wakes it too."""

    def __init__(self, db: store.AsyncStore, *, every_s: float = WATCH_S):
        self.db = db
        self.every_s = every_s
        #: how many times each partner was woken
        self.marks: dict[str, int] = defaultdict(int)
        self.waiting: dict[str, asyncio.Event] = {}
        self.waiters = 0
        self.last_id: int | None = None
        self._task: asyncio.Task | None = None
        self._listening = store.shared(db.settings)
        #: the server is stopping: polls answer now with what they have
        self.stopping = False

    async def start(self) -> None:
        """Listen (PostgreSQL), or look at the outbox once (SQLite), before the first poll."""
        if not self._listening:
            self.last_id = await self.db.run(_top_id)
            return
        listening = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._listen(listening))
        await listening

    def mark(self, partner_id: str) -> int:
        return self.marks[partner_id]

    async def wait(self, partner_id: str, timeout_s: float, since: int) -> bool:
        """Until a delivery is queued for the partner after ``since`` (its :meth:`mark`) (True)
        or ``timeout_s`` passes (False)."""
        if self.stopping:
            return False
        if self.marks[partner_id] != since:
            return True
        event = self.waiting.setdefault(partner_id, asyncio.Event())
        self.waiters += 1
        if not self._listening and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._look())
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout_s))
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self.waiters -= 1

    def _woke(self, partner_ids: Iterable[str]) -> None:
        for partner_id in partner_ids:
            self.marks[partner_id] += 1
            if (event := self.waiting.pop(partner_id, None)) is not None:
                event.set()

    async def _look(self) -> None:
        if self.last_id is None:
            self.last_id = await self.db.run(_top_id)
        while self.waiters:
            await asyncio.sleep(self.every_s)
            try:
                self.last_id, queued = await self.db.run(_queued_since, self.last_id)
            except Exception:  # the state away: the waiting polls end on their own time
                log.exception("pull_watch_failed")
                continue
            self._woke(queued)
        self.waiting.clear()  # nobody waits on any of them now

    async def _listen(self, listening: asyncio.Future) -> None:
        """LISTEN for as long as the server runs; after a lost connection, listen again and wake
        every waiting poll (what was told meanwhile is not told again)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.db.settings.state_url, autocommit=True, connect_timeout=10,
                        application_name="newswire-pull-watch") as conn:
                    await conn.execute(f"LISTEN {outbox.PULLS_CHANNEL}")
                    if listening.done():
                        self._woke(list(self.waiting))
                    else:
                        listening.set_result(None)
                    async for notice in conn.notifies():
                        self._woke(notice.payload.split(","))
            except psycopg.Error as exc:
                if not listening.done():
                    listening.set_exception(store.StateUnavailable(f"webhook state {self.db.settings.state_shown}:"
                                                                   f" cannot listen: {exc}"))
                    return
                log.warning("pull_watch_lost", error=str(exc).strip())
                await asyncio.sleep(1.0)

    def stop_waiting(self) -> None:
        """The server is stopping: every waiting poll answers at once (an empty page)."""
        self.stopping = True
        for event in self.waiting.values():
            event.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def long_poll(db: store.AsyncStore, watch: Watch, partner_id: str, *, after: int | None, limit: int,
                    wait_s: float) -> Page:
    """:func:`changes`, waiting up to ``wait_s`` for something to hand out if there is nothing yet."""
    deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
    mark = watch.mark(partner_id)
    page = first = await db.run(changes, partner_id, after=after, limit=limit)
    while not page.changes and not watch.stopping and (left := deadline - time.monotonic()) > 0:
        if page.next_due_at is not None:
            left = min(left, max(0.0, page.next_due_at - time.time()) + 0.01)
        await watch.wait(partner_id, left, since=mark)
        mark = watch.mark(partner_id)
        page = await db.run(changes, partner_id, after=None, limit=limit)
    return Page(page.changes, page.more, first.acknowledged, page.next_due_at)
