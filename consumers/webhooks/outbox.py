"""The durable outbox: one row per delivery of an event to a partner under one sequence number
(the live path queues an event once per partner; a replay may queue it again, see
:mod:`newswire.consumers.replay.targets`).

The Kafka side (:class:`Enqueuer`, in the consume loop's thread) decides which partners get
each event, gives each delivery the partner's next sequence number, renders its payload and
writes the rows of a whole batch in one SQLite transaction, committed (``synchronous=FULL``)
by ``before_commit``, i.e. BEFORE the Kafka offsets are committed: once Kafka forgets an
event, its deliveries are on disk; a crash before that re-reads the batch and, since what
was queued is skipped (see :mod:`.filters`), queues nothing twice.

The HTTP side (:mod:`.pusher`) asks :func:`due` for what to send next and records each
attempt with :func:`record`. Order per partner and article: only the lowest pending version
of an article is ever due (the "head"), and the pusher never has two deliveries of one
article in flight, so a partner never gets an older version after a newer one. No version
is skipped: each event carries the whole story, but partners count on the sequence numbers
being gapless, so every queued delivery is sent.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

from newswire import bus, logs
from newswire.config import Settings
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import payloads, store
from newswire.consumers.webhooks.dialect import Db
from newswire.consumers.webhooks.filters import History, decide
from newswire.consumers.webhooks.partners import Partner

log = logs.get(__name__)


def transaction(db: Db):
    """``with transaction(db):`` BEGIN … COMMIT (see :meth:`.dialect.Db.transaction`)."""
    return db.transaction()


@dataclass
class _Row:
    partner_id: str
    event_id: str
    article_id: str
    version: int
    event_type: str
    seq: int
    content_type: str
    payload: bytes
    next_attempt_at: float
    #: to render again if another writer (a replay) took sequence numbers meanwhile
    event: dict
    fmt: str
    at: datetime


class Enqueuer:
    """Turns article events into outbox rows; runs in the Kafka consume loop's thread.

    ``handle`` is the EventLoop handler, ``commit`` its ``before_commit``. ``on_committed``
    is called with the ids of the partners that got new deliveries, after they are durable.
    """

    def __init__(self, settings: Settings, on_committed: Callable[[set[str]], None] | None = None):
        self.authority = settings.authority()  # before the state file: a command without it ends in one line
        self.db = store.connect(settings, synchronous="FULL")
        self.on_committed = on_committed
        self._partners: list[Partner] | None = None
        self._next_seq: dict[str, int] = {}
        self._first_seq: dict[str, int] = {}
        self._rows: list[_Row] = []
        self._events: dict[str, tuple] = {}
        #: event id → partners it is queued for in this batch
        self._batch_ids: dict[str, set[str]] = defaultdict(set)
        #: article → partner → what this batch queued, on top of what the file says
        self._batch_history: dict[str, dict[str, History]] = defaultdict(dict)

    def _load_partners(self) -> list[Partner]:
        if self._partners is None:
            self._partners = registry.all_partners(self.db)
            seqs = dict(self.db.execute("SELECT id, next_seq FROM partners").fetchall())
            self._first_seq = {p.id: seqs[p.id] for p in self._partners}
            self._next_seq = dict(self._first_seq)
        return self._partners

    def _history(self, article_id: str) -> dict[str, History]:
        rows = self.db.execute(
            "SELECT partner_id, max(version), max(CASE WHEN event_type = 'killed' THEN 1 ELSE 0 END) FROM deliveries"
            " WHERE article_id = ? GROUP BY partner_id", (article_id,)).fetchall()
        history = {pid: History(max_version=v, killed=bool(k)) for pid, v, k in rows}
        history.update(self._batch_history.get(article_id, {}))
        return history

    def handle(self, delivery: bus.Delivery) -> None:
        event = delivery.event
        now = datetime.now(timezone.utc)
        history = self._history(event["article_id"])
        event_id = str(event["event_id"])
        # the event id is the idempotency key: a partner never gets two deliveries with one id
        had_id = {pid for (pid,) in self.db.execute("SELECT partner_id FROM deliveries WHERE event_id = ?",
                                                   (event_id,))}
        had_id |= self._batch_ids.get(event_id, set())
        chosen = []
        for partner in self._load_partners():
            if partner.id in had_id:
                continue
            decision = decide(partner.subscription, event, history.get(partner.id, History()),
                              enabled=partner.enabled, now=now)
            if decision.deliver:
                chosen.append((partner, decision))
        if not chosen:
            return
        rows = []
        render = payloads.Renderer(event, at=now, authority=self.authority)
        for partner, decision in chosen:  # render all first: a ValueError leaves nothing half-queued
            seq = self._next_seq[partner.id]
            payload = render(partner.format, seq=seq)
            due = (decision.not_before or now).timestamp()
            rows.append(_Row(partner.id, event_id, event["article_id"], event["version"],
                             event["event_type"], seq, partner.content_type, payload, due, event,
                             partner.format, now))
        for row in rows:
            self._next_seq[row.partner_id] = row.seq + 1
            self._batch_ids[event_id].add(row.partner_id)
            self._batch_history[row.article_id][row.partner_id] = History(
                max_version=row.version, killed=row.event_type == "killed")
        self._rows.extend(rows)
        self._events[event_id] = (event["article_id"], event["version"], event["event_type"],
                                                delivery.record.value)
        log.info("event_queued", article_id=event["article_id"], version=event["version"],
                 event_id=event_id, event_type=event["event_type"],
                 partners=[r.partner_id for r in rows])

    def commit(self) -> None:
        """Write the batch's deliveries durably (called before Kafka offsets are committed)."""
        if self._rows:
            now = time.time()
            with transaction(self.db) as db:
                for pid, first in self._first_seq.items():
                    if self._next_seq[pid] != first:
                        self._take_numbers(db, pid, first)
                db.executemany("INSERT INTO events (event_id, article_id, version, event_type, avro)"
                               " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", [(k, *v) for k, v in self._events.items()])
                db.executemany(
                    "INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq,"
                    " content_type, payload, status, next_attempt_at, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    [(r.partner_id, r.event_id, r.article_id, r.version, r.event_type, r.seq, r.content_type,
                      r.payload, r.next_attempt_at, now) for r in self._rows])
        touched = {r.partner_id for r in self._rows}
        self._reset()
        if touched and self.on_committed:
            self.on_committed(touched)

    def _take_numbers(self, db: Db, partner_id: str, first: int) -> None:
        """Claim the batch's sequence numbers of one partner (inside the write transaction).

        If another writer (a replay queueing for this partner) took numbers since the batch
        read them (a replay, or another pusher's Kafka side), the batch's deliveries move up by
        as many, and are rendered again, since the number is part of the payload; numbers stay
        gapless and unique either way. On PostgreSQL the partner's row is locked until the
        commit (the batch's partners are taken in id order, so two writers never deadlock).
        """
        current = db.execute(f"SELECT next_seq FROM partners WHERE id = ?{db.for_update}",
                             (partner_id,)).fetchone()[0]
        shift = current - first
        if shift:
            for row in self._rows:
                if row.partner_id == partner_id:
                    row.seq += shift
                    row.payload = payloads.render(row.event, row.fmt, seq=row.seq, at=row.at, authority=self.authority)
            log.info("sequence_numbers_moved", partner=partner_id, by=shift)
            # so that a commit tried again (after a full disk) does not move them twice
            self._first_seq[partner_id], self._next_seq[partner_id] = current, self._next_seq[partner_id] + shift
        db.execute("UPDATE partners SET next_seq = ? WHERE id = ?", (self._next_seq[partner_id], partner_id))

    def _reset(self) -> None:
        self._rows.clear()
        self._events.clear()
        self._batch_ids.clear()
        self._batch_history.clear()
        self._partners = None  # re-read the registry for the next batch

    def close(self) -> None:
        self.db.close()


# --- the HTTP side --------------------------------------------------------------------------

_HEAD = ("NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.partner_id = d.partner_id"
         " AND o.article_id = d.article_id AND o.status = 'pending' AND o.version < d.version)")


def _not_in(articles: Iterable[str]) -> tuple[str, list[str]]:
    articles = list(articles)
    if not articles:
        return "", []
    return f" AND d.article_id NOT IN ({','.join('?' * len(articles))})", articles


def due(db: Db, partner_id: str, *, now: float, busy: Iterable[str], limit: int
        ) -> list[sqlite3.Row]:
    """The deliveries to send now: heads of their article, due, not of an article in flight."""
    extra, args = _not_in(busy)
    return db.execute(
        f"SELECT d.* FROM deliveries d WHERE d.partner_id = ? AND d.status = 'pending'"
        f" AND d.next_attempt_at <= ?{extra} AND {_HEAD} ORDER BY d.next_attempt_at, d.id LIMIT ?",
        (partner_id, now, *args, limit)).fetchall()


def next_due_at(db: Db, partner_id: str, *, now: float) -> float | None:
    """When this partner's next pending delivery that is not due yet falls due (a cheap index
    seek: it may be one waiting behind an older version, which only costs an early look)."""
    return db.execute("SELECT min(next_attempt_at) FROM deliveries WHERE partner_id = ? AND status = 'pending'"
                      " AND next_attempt_at > ?", (partner_id, now)).fetchone()[0]


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt came to, as the pusher records it."""

    status_code: int | None
    duration_ms: float
    error: str | None
    #: delivered | retry | throttled | dead | gone
    outcome: str
    next_attempt_at: float | None
    #: counts against the retry budget
    spent: bool = True


def record(db: Db, done: Iterable[tuple[sqlite3.Row, Attempt, float]]) -> None:
    """Record attempts (receipts) and their deliveries' new state, all in one transaction.

    ``done`` holds ``(delivery row as sent, attempt, when)``; the pusher groups the attempts
    that finish together (a group commit), each waiting for the commit before its article
    may send again.
    """
    updates, inserts = [], []
    for delivery, attempt, at in done:
        status = {"delivered": "delivered", "dead": "dead"}.get(attempt.outcome, "pending")
        tries = delivery["tries"] + 1
        updates.append((tries, int(attempt.spent), status, attempt.next_attempt_at, attempt.status_code,
                        attempt.error, at if status == "delivered" else None, delivery["id"]))
        inserts.append((delivery["id"], delivery["partner_id"], delivery["event_id"], delivery["article_id"],
                        delivery["version"], delivery["seq"], tries, at, attempt.status_code,
                        round(attempt.duration_ms, 1), attempt.error, attempt.outcome, attempt.next_attempt_at))
    with transaction(db):
        db.executemany("UPDATE deliveries SET tries = ?, attempts = attempts + ?, status = ?,"
                       " next_attempt_at = coalesce(?, next_attempt_at), last_status = ?, last_error = ?,"
                       " delivered_at = coalesce(?, delivered_at) WHERE id = ?", updates)
        db.executemany("INSERT INTO attempts (delivery_id, partner_id, event_id, article_id, version, seq, attempt,"
                       " at, status_code, duration_ms, error, outcome, next_attempt_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", inserts)


def event_avro(db: Db, event_id: str) -> bytes:
    return db.execute("SELECT avro FROM events WHERE event_id = ?", (event_id,)).fetchone()[0]


@dataclass(frozen=True)
class Redrive:
    redriven: list[int]
    #: dead deliveries left dead because a newer version of the article already reached the partner
    superseded: list[int]


def redrive(db: Db, *, partner_id: str | None = None, ids: Iterable[int] = (),
            now: float | None = None) -> Redrive:
    """Give dead deliveries a fresh retry budget and make them due now.

    A dead delivery whose article has a newer version already delivered to that partner is
    left dead (sending it would put an older version after a newer one; the newer one carries
    the whole story).
    """
    now = time.time() if now is None else now
    ids = list(ids)
    where, args = "d.status = 'dead'", []
    if partner_id:
        where += " AND d.partner_id = ?"
        args.append(partner_id)
    if ids:
        where += f" AND d.id IN ({','.join('?' * len(ids))})"
        args += ids
    with transaction(db):
        rows = db.execute(
            f"SELECT d.id, EXISTS (SELECT 1 FROM deliveries n WHERE n.partner_id = d.partner_id"
            f" AND n.article_id = d.article_id AND n.version > d.version AND n.status = 'delivered')"
            f" FROM deliveries d WHERE {where} ORDER BY d.id", args).fetchall()
        go = [i for i, newer in rows if not newer]
        db.executemany("UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?"
                       " WHERE id = ?", [(now, i) for i in go])
    result = Redrive(redriven=go, superseded=[i for i, newer in rows if newer])
    log.info("deliveries_redriven", partner=partner_id, redriven=len(result.redriven),
             superseded=len(result.superseded))
    return result


def pending_counts(db: Db) -> dict[str, int]:
    return dict(db.execute("SELECT partner_id, count(*) FROM deliveries WHERE status = 'pending'"
                           " GROUP BY partner_id").fetchall())
