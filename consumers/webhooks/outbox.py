"""The durable outbox: one row per delivery of an event to a partner under one sequence number
(the live path queues an event once per partner; a replay may queue it again, see
:mod:`newswire.consumers.replay.targets`).

Deliveries are written by one function, :func:`enqueue`, for the live path and replays
alike: it gives each delivery its partner's next sequence number inside the write
transaction (PostgreSQL: with the partners' rows locked), so the gapless-numbering rule
lives in one place. A body is rendered once per event and format and kept once (table
``bodies``); the number is put in when it goes.

The Kafka side (:class:`Enqueuer`, in the consume loop's thread) decides which partners get
each event, renders each format once and writes the rows of a whole batch in one
transaction, committed (``synchronous=FULL``) by ``before_commit``, i.e. BEFORE the Kafka
offsets are committed: once Kafka forgets an event, its deliveries are on disk; a crash
before that re-reads the batch and, since what was queued is skipped (see :mod:`.filters`),
queues nothing twice.

The HTTP side (:mod:`.pusher`) reads what is pending in batches (:func:`pending_after`) into
its schedule and records each attempt with :func:`record`. Order per partner and article:
only the lowest pending version of an article is ever due (the "head"), and the pusher never
has two deliveries of one article in flight, so a partner never gets an older version after a newer one. No version
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
from newswire.formats.kept import Renders

log = logs.get(__name__)

#: bytes of renders the live path keeps in memory: each event is rendered once per format, as
#: its batch is queued; the file keeps them for replays
RENDERS_IN_MEMORY = 4 * 1024 * 1024


def transaction(db: Db):
    """``with transaction(db):`` BEGIN … COMMIT (see :meth:`.dialect.Db.transaction`)."""
    return db.transaction()


@dataclass
class Queued:
    """One delivery to queue. ``body`` is its format's body before and after the sequence
    number (:meth:`.payloads.Renderer.parts`: the same object for every partner of that format,
    kept once); the number is given by :func:`enqueue` (the partner's next one at the time of
    writing)."""

    partner_id: str
    event_id: str
    article_id: str
    version: int
    event_type: str
    content_type: str
    next_attempt_at: float
    body: tuple[bytes, bytes | None]
    seq: int = 0


#: the PostgreSQL channel on which :func:`enqueue` names the pull partners it queued for
PULLS_CHANNEL = "newswire_pulls"


#: what :func:`enqueue` keeps of each queued event: event id → (article id, version, event type, Avro)
Events = dict[str, tuple[str, int, str, bytes]]


def enqueue(db: Db, rows: list[Queued], events: Events, *,
            keep: Callable[[Db, Queued], bool] | None = None) -> list[Queued]:
    """Queue deliveries: the one writer of the outbox, for the live path and replays alike.

    In one write transaction: the rows ``keep`` refuses (checked there, against what other
    writers queued meanwhile) are dropped; each partner's rows get its next sequence numbers,
    in order, so numbers stay gapless and unique whoever queues; the events and deliveries are
    inserted (a batch per table), each body once. Returns the rows written, numbered. Run again
    after a failure (a full disk), it numbers them afresh from what the file says.
    """
    now = time.time()
    with transaction(db):
        if keep is not None:
            rows = [row for row in rows if keep(db, row)]
        if not rows:
            return []
        claimed = registry.claim_seqs(db, {row.partner_id for row in rows})
        numbers = dict(claimed.numbers)
        for row in rows:
            row.seq = numbers[row.partner_id]
            numbers[row.partner_id] += 1
        of_body = {id(row.body): row for row in rows}  # each body once: its event's rows of a format share it
        body_ids = dict(zip(of_body, db.insert_ids("bodies", ("event_id", "head", "tail"),
                                                   [(row.event_id, *row.body) for row in of_body.values()])))
        registry.set_next_seqs(db, {row.partner_id: numbers[row.partner_id] for row in rows})
        used = {row.event_id for row in rows}
        db.executemany("INSERT INTO events (event_id, article_id, version, event_type, avro)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       [(k, *v) for k, v in events.items() if k in used])
        db.executemany(
            "INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq,"
            " content_type, body_id, status, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            [(r.partner_id, r.event_id, r.article_id, r.version, r.event_type, r.seq, r.content_type,
              body_ids[id(r.body)], r.next_attempt_at, now) for r in rows])
        if db.announces:  # wake the pull partners' long polls (see .pull.Watch)
            db.announce(PULLS_CHANNEL, claimed.pulling)
    return rows


class Enqueuer:
    """Turns article events into outbox rows; runs in the Kafka consume loop's thread.

    ``handle`` is the EventLoop handler, ``commit`` its ``before_commit``. ``on_committed``
    is called with the ids of the partners that got new deliveries, after they are durable.
    """

    def __init__(self, settings: Settings, on_committed: Callable[[set[str]], None] | None = None):
        self.authority = settings.authority()  # before the state file: a command without it ends in one line
        self.db = store.connect(settings, synchronous="FULL")
        #: the bodies' renders, kept for replays too (a backfill finds what the live pushes rendered)
        self.renders = Renders(self.authority, max_bytes=RENDERS_IN_MEMORY, path=payloads.kept_renders(settings))
        self.on_committed = on_committed
        #: the registry as of ``_registry_at``; each batch reads only the partners changed since
        self._partners: dict[str, Partner] = {}
        self._registry_at = 0.0
        self._registry_seen: dict[str, float] = {}
        self._fresh = False
        self._rows: list[Queued] = []
        self._events: Events = {}
        #: event id → partners it is queued for in this batch
        self._batch_ids: dict[str, set[str]] = defaultdict(set)
        #: article → partner → what this batch queued, on top of what the file says
        self._batch_history: dict[str, dict[str, History]] = defaultdict(dict)
        self._load_partners()  # now, not in the first event's batch (a flash just after a start)
        self._fresh = False

    def _load_partners(self) -> Iterable[Partner]:
        if not self._fresh:
            changed, self._registry_at = registry.changed_since(self.db, self._registry_at,
                                                                seen=self._registry_seen)
            self._partners.update((partner.id, partner) for partner in changed)
            self._fresh = True
        return self._partners.values()

    def _history(self, article_id: str) -> dict[str, History]:
        history = histories(self.db, article_id)
        history.update(self._batch_history.get(article_id, {}))
        return history

    def handle(self, delivery: bus.Delivery) -> None:
        event = delivery.event
        now = datetime.now(timezone.utc)
        history = self._history(event["article_id"])
        event_id = str(event["event_id"])
        # the event id is the idempotency key: a partner never gets two deliveries with one id
        had_id = partners_with_event(self.db, event_id) | self._batch_ids.get(event_id, set())
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
        render = payloads.Renderer(event, at=now, authority=self.authority, renders=self.renders)
        bodies = {fmt: render.parts(fmt) for fmt in {p.format for p, _ in chosen}}  # a ValueError queues nothing
        rows = [Queued(partner.id, event_id, event["article_id"], event["version"], event["event_type"],
                       partner.content_type, (decision.not_before or now).timestamp(), bodies[partner.format])
                for partner, decision in chosen]
        for row in rows:
            self._batch_ids[event_id].add(row.partner_id)
            self._batch_history[row.article_id][row.partner_id] = History(
                max_version=row.version, killed=row.event_type == "killed")
        self._rows.extend(rows)
        self._events[event_id] = (event["article_id"], event["version"], event["event_type"],
                                  delivery.record.value)
        log.info("event_queued", article_id=event["article_id"], version=event["version"],
                 event_id=event_id, event_type=event["event_type"], partners=len(rows))

    def commit(self) -> None:
        """Write the batch's deliveries durably (called before Kafka offsets are committed)."""
        if self._rows:
            enqueue(self.db, self._rows, self._events)
        self.renders.flush()  # a cache beside the outbox: written after it, lost with no harm
        touched = {r.partner_id for r in self._rows}
        self._reset()
        if touched and self.on_committed:
            self.on_committed(touched)

    def _reset(self) -> None:
        self._rows.clear()
        self._events.clear()
        self._batch_ids.clear()
        self._batch_history.clear()
        self._fresh = False  # look at the registry again for the next batch

    def close(self) -> None:
        self.renders.close()
        self.db.close()


#: whether a partner was queued the kill of an article (both stores: no sums of booleans)
_KILLED = "max(CASE WHEN event_type = 'killed' THEN 1 ELSE 0 END)"


def histories(db: Db, article_id: str) -> dict[str, History]:
    """Per partner, the newest version of this article it was queued and whether the kill was."""
    rows = db.execute(f"SELECT partner_id, max(version), {_KILLED} FROM deliveries"
                      " WHERE article_id = ? GROUP BY partner_id", (article_id,)).fetchall()
    return {pid: History(max_version=v, killed=bool(k)) for pid, v, k in rows}


def partners_with_event(db: Db, event_id: str) -> set[str]:
    return {pid for (pid,) in db.execute("SELECT partner_id FROM deliveries WHERE event_id = ?", (event_id,))}


def event_status(db: Db, partner_id: str, event_id: str) -> str | None:
    """``pending`` (a delivery of it is), ``had`` (delivered or dead, none pending) or None."""
    return event_statuses(db, partner_id, [event_id]).get(event_id)


#: ids in one ``IN (...)`` of the look-ups below
_CHUNK = 500


def event_statuses(db: Db, partner_id: str, event_ids: list[str]) -> dict[str, str]:
    """:func:`event_status` of each of ``event_ids`` that the partner has a delivery of, in a
    query per :data:`_CHUNK` ids (the others are missing from the answer)."""
    # by the event index: ``partner_id || ''`` keeps SQLite from reading every delivery of the
    # partner through (partner_id, seq) instead (it did, 37 ms a look-up at 20,000 deliveries)
    rows = db.select_in("SELECT event_id, max(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) FROM deliveries"
                        " WHERE event_id IN (...) AND partner_id || '' = ? GROUP BY event_id", event_ids,
                        after=(partner_id,), chunk=_CHUNK)
    return {event_id: "pending" if pending else "had" for event_id, pending in rows}


@dataclass(frozen=True)
class ArticleState:
    """What a partner has of one article: ``history`` (every delivery, for the subscription's
    rules) and ``newest`` / ``killed`` (only what it received or has queued: what the order
    rule protects)."""

    history: History
    newest: int | None
    killed: bool

    def supersedes(self, version: int) -> bool:
        """Sending this version would put it after a newer one, or after the kill."""
        return self.newest is not None and (version < self.newest or (self.killed and version > self.newest))


#: what a partner has of an article that it has no delivery of
NOTHING = ArticleState(History(max_version=None, killed=False), None, False)


def article_state(db: Db, partner_id: str, article_id: str) -> ArticleState:
    return article_states(db, partner_id, [article_id])[article_id]


def article_states(db: Db, partner_id: str, article_ids: list[str]) -> dict[str, ArticleState]:
    """:func:`article_state` of each of ``article_ids``, in a query per :data:`_CHUNK` ids."""
    found = dict.fromkeys(article_ids, NOTHING)
    rows = db.select_in(
        f"SELECT article_id, max(version), {_KILLED}, max(CASE WHEN status != 'dead' THEN version END),"
        " max(CASE WHEN status != 'dead' AND event_type = 'killed' THEN 1 ELSE 0 END)"
        " FROM deliveries WHERE partner_id = ? AND article_id IN (...) GROUP BY article_id", article_ids,
        before=(partner_id,), chunk=_CHUNK)
    for article_id, version, killed, newest, newest_killed in rows:
        found[article_id] = ArticleState(History(max_version=version, killed=bool(killed)), newest,
                                         bool(newest_killed))
    return found


def pending_among(db: Db, partner_id: str, event_ids: list[str]) -> int:
    """How many deliveries of these events to the partner are still pending."""
    return sum(count for (count,) in db.select_in(
        "SELECT count(*) FROM deliveries WHERE partner_id = ? AND status = 'pending' AND event_id IN (...)",
        event_ids, before=(partner_id,), chunk=_CHUNK))


# --- the HTTP side --------------------------------------------------------------------------

#: what the pusher keeps in memory of a pending delivery (its body is read when it goes)
_PENDING = ("id, partner_id, event_id, article_id, version, event_type, seq, content_type, body_id, attempts,"
            " tries, next_attempt_at, created_at, last_status, revision")


@dataclass(slots=True, eq=False)
class Pending:
    """A pending delivery as the pusher schedules it (read like a ``sqlite3.Row`` too)."""

    id: int
    partner_id: str
    event_id: str
    article_id: str
    version: int
    event_type: str
    seq: int
    content_type: str
    body_id: int
    attempts: int
    tries: int
    next_attempt_at: float
    created_at: float
    last_status: int | None
    #: as read from the store: a resend or redrive since then makes it go again (see :func:`record`)
    revision: int
    #: (next attempt, attempts, revision) of a resend or redrive seen while this delivery's attempt
    #: was out: the pusher's schedule takes them on once the attempt is recorded
    again: tuple[float, int, int] | None = None

    def __getitem__(self, key: str):
        return getattr(self, key)


def _of(partner_id: str | None) -> tuple[str, tuple]:
    return (" AND partner_id = ?", (partner_id,)) if partner_id else ("", ())


def pending_after(db: Db, after_id: int, *, limit: int, partner_id: str | None = None
                  ) -> list[Pending]:
    """Pending deliveries (of one partner, or all) with an id above ``after_id``, oldest first,
    at most ``limit``: the pusher reads what was queued since it last looked, in batches."""
    where, args = _of(partner_id)
    return [Pending(*row) for row in db.execute(
        f"SELECT {_PENDING} FROM deliveries WHERE status = 'pending' AND id > ?{where} ORDER BY id LIMIT ?",
        (after_id, *args, limit))]


def pending_times(db: Db, up_to_id: int, partner_ids: list[str]) -> dict[str, list[tuple[int, float, int, int]]]:
    """By partner, (id, next attempt, attempts spent, revision) of each of these partners'
    pending deliveries up to ``up_to_id``: what the pusher compares with its schedule to see
    what other processes changed (redrive, resend). A query per :data:`_CHUNK` partners."""
    found: dict[str, list[tuple[int, float, int, int]]] = defaultdict(list)
    for partner_id, *times in db.select_in(
            "SELECT partner_id, id, next_attempt_at, attempts, revision FROM deliveries WHERE status = 'pending'"
            " AND id <= ? AND partner_id IN (...)", partner_ids, before=(up_to_id,), chunk=_CHUNK):
        found[partner_id].append(tuple(times))
    return found


def pending_by_id(db: Db, ids: list[int]) -> list[Pending]:
    return [Pending(*row) for row in db.select_in(
        f"SELECT {_PENDING} FROM deliveries WHERE status = 'pending' AND id IN (...)", ids)]


def bodies(db: Db, ids: Iterable[int]) -> dict[int, tuple[bytes, bytes | None]]:
    """Bodies by id, before and after their sequence number (see :func:`.payloads.numbered`)."""
    return {body_id: (head, tail)
            for body_id, head, tail in db.select_in("SELECT id, head, tail FROM bodies WHERE id IN (...)", list(ids))}


def payload(db: Db, delivery_id: int) -> bytes:
    """The body of one delivery as it goes, with its sequence number."""
    seq, head, tail = db.execute("SELECT d.seq, b.head, b.tail FROM deliveries d JOIN bodies b ON b.id = d.body_id"
                                 " WHERE d.id = ?", (delivery_id,)).fetchone()
    return payloads.numbered(head, tail, seq)


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
    #: the partner asked (Retry-After) not to be called before then
    pause_until: float | None = None
    #: push (the pusher sent it) | pull (the partner acknowledged what a pull handed it, see .pull)
    via: str = "push"


def record(db: Db, done: Iterable[tuple[sqlite3.Row, Attempt, float]]) -> None:
    """Record attempts (receipts) and their deliveries' new state, all in one transaction.

    ``done`` holds ``(delivery row as sent, attempt, when)``; the pusher groups the attempts
    that finish together (a group commit), each waiting for the commit before its article
    may send again.
    """
    with transaction(db):
        _write_attempts(db, done)


def _write_attempts(db: Db, done: Iterable[tuple[sqlite3.Row, Attempt, float]]) -> None:
    """:func:`record`'s writes, in the caller's transaction. A delivery already delivered stays
    so (a pull's acknowledgement may come before the outcome of an attempt sent just before the
    partner switched from push to pull). A delivery resent or redriven after its row was read
    (its ``revision`` moved on: the attempt was in flight, or answered but not yet recorded)
    gets the receipt and the attempt's count, and stays as the resend left it: pending, to go
    again."""
    done = list(done)
    updates, inserts = [], []
    for delivery, attempt, at in done:
        status = {"delivered": "delivered", "dead": "dead"}.get(attempt.outcome, "pending")
        tries, revision = delivery["tries"] + 1, delivery["revision"]
        updates.append((tries, attempt.status_code, attempt.error, revision, int(attempt.spent), revision, status,
                        revision, attempt.next_attempt_at, revision, at if status == "delivered" else None,
                        delivery["id"]))
        inserts.append((delivery["id"], delivery["partner_id"], delivery["event_id"], delivery["article_id"],
                        delivery["version"], delivery["seq"], tries, at, attempt.status_code,
                        round(attempt.duration_ms, 1), attempt.error, attempt.outcome, attempt.next_attempt_at,
                        attempt.via))
    # PostgreSQL locks rows as they are written: deliveries in id order, then partners, the
    # order redrive and resend take them in too (so that none of them waits on another in a circle)
    updates.sort(key=lambda update: update[-1])
    db.executemany("UPDATE deliveries SET tries = ?, last_status = ?, last_error = ?,"
                   " attempts = CASE WHEN revision = ? THEN attempts + ? ELSE attempts END,"
                   " status = CASE WHEN status = 'delivered' OR revision <> ? THEN status ELSE ? END,"
                   " next_attempt_at = CASE WHEN revision = ? THEN coalesce(?, next_attempt_at)"
                   " ELSE next_attempt_at END,"
                   " delivered_at = CASE WHEN revision = ? THEN coalesce(?, delivered_at) ELSE delivered_at END"
                   " WHERE id = ?", updates, keyed=True)  # an attempt per delivery: one is in flight at a time
    db.executemany("INSERT INTO attempts (delivery_id, partner_id, event_id, article_id, version, seq, attempt,"
                   " at, status_code, duration_ms, error, outcome, next_attempt_at, via)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", inserts)
    registry.note_attempts(db, [(d["partner_id"], attempt.outcome, at, attempt.pause_until) for d, attempt, at in done])


def partners_of(db: Db, ids: list[int]) -> set[str]:
    """The partners of these deliveries."""
    return {pid for (pid,) in db.select_in("SELECT DISTINCT partner_id FROM deliveries WHERE id IN (...)", ids)}


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
        db.executemany("UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                       " revision = revision + 1 WHERE id = ?", [(now, i) for i in go])
        registry.outbox_changed(db, partners_of(db, go), now)
    result = Redrive(redriven=go, superseded=[i for i, newer in rows if newer])
    log.info("deliveries_redriven", partner=partner_id, redriven=len(result.redriven),
             superseded=len(result.superseded))
    return result


def pending_counts(db: Db) -> dict[str, int]:
    return dict(db.execute("SELECT partner_id, count(*) FROM deliveries WHERE status = 'pending'"
                           " GROUP BY partner_id").fetchall())


# --- pulls (see .pull) -----------------------------------------------------------------------

def mark_pulled(db: Db, ids: list[int], at: float) -> None:
    """A pull handed these deliveries to their partner: its next acknowledgement counts them."""
    db.executemany("UPDATE deliveries SET pulled_at = ? WHERE id = ?", [(at, i) for i in sorted(ids)])


def acknowledge_pulled(db: Db, partner_id: str, through_seq: int, at: float) -> list[int]:
    """The partner has every delivery a pull handed it numbered up to ``through_seq``: those not
    delivered yet are, each with a receipt (``via`` pull, its duration from being handed out to
    being acknowledged). A delivery no pull handed out (an embargoed one not yet due, one that was
    being retried by push) is not acknowledged by a number above it. Returns the numbers."""
    with transaction(db):
        rows = db.execute(f"SELECT id, partner_id, event_id, article_id, version, seq, tries, pulled_at, revision"
                          f" FROM deliveries WHERE partner_id = ? AND status != 'delivered' AND seq <= ?"
                          f" AND pulled_at IS NOT NULL ORDER BY id{db.for_update}",
                          (partner_id, through_seq)).fetchall()
        _write_attempts(db, [(row, Attempt(status_code=None, duration_ms=max(0.0, (at - row["pulled_at"]) * 1000),
                                           error=None, outcome="delivered", next_attempt_at=None, spent=False,
                                           via="pull"), at) for row in rows])
    return [row["seq"] for row in rows]


# --- retention (see .retention) --------------------------------------------------------------

@dataclass(frozen=True)
class Pruned:
    """Rows :func:`prune` deleted (or, in a dry run, would delete)."""

    deliveries: int = 0
    attempts: int = 0
    bodies: int = 0
    events: int = 0

    def __add__(self, other: "Pruned") -> "Pruned":
        return Pruned(self.deliveries + other.deliveries, self.attempts + other.attempts,
                      self.bodies + other.bodies, self.events + other.events)

    def __bool__(self) -> bool:
        return any((self.deliveries, self.attempts, self.bodies, self.events))


#: rows deleted per transaction: a short one (about 10 ms on SQLite), so that the pusher's own
#: writes never wait long behind it
PRUNE_BATCH = 500

#: a delivered delivery that retention may forget: the partner has a newer delivery of the article
#: that is not dead, so neither the newest version the partner has (what the order rule, the
#: subscription rules and replays read, see :func:`article_states`) nor a kill is forgotten
_FORGETTABLE = ("d.status = 'delivered' AND d.delivered_at < ? AND d.event_type != 'killed'"
                " AND EXISTS (SELECT 1 FROM deliveries n WHERE n.article_id = d.article_id"
                " AND n.partner_id = d.partner_id AND n.status != 'dead'"
                " AND (n.version > d.version OR (n.version = d.version AND n.id > d.id)))")


#: the longest rest between two of :func:`prune`'s transactions
REST_MAX_S = 0.5


def rest_as_long(seconds: float) -> bool:
    """Between two of :func:`prune`'s transactions: wait as long as the last one took (at most
    :data:`REST_MAX_S`), so that other writers get at least half of the time. Returns True: go on."""
    time.sleep(min(seconds, REST_MAX_S))
    return True


def prune(db: Db, before: float, *, batch: int = PRUNE_BATCH, dry_run: bool = False,
          rest: Callable[[float], bool] = rest_as_long) -> Pruned:
    """Forget what was delivered before ``before``: deliveries (see :data:`_FORGETTABLE`), the
    bodies and events no delivery uses any more, and receipts (attempts) made before it.

    What was not delivered (pending, dead: gaps a partner can still ask for) is kept whatever
    its age, and so is each partner's newest delivery and kill of each article: an old story's
    kill still reaches those who had it, and a replay never sends it an older version. Sequence
    numbers are the partner's (``partners.next_seq``) and go on gapless. Deletes in
    transactions of ``batch`` rows, calling ``rest(seconds the last one took)`` between two
    (False: stop there); ``dry_run`` counts instead.
    """
    if dry_run:
        (deliveries,) = db.execute(f"SELECT count(*) FROM deliveries d WHERE {_FORGETTABLE}", (before,)).fetchone()
        (attempts,) = db.execute("SELECT count(*) FROM attempts WHERE at < ?", (before,)).fetchone()
        return Pruned(deliveries=deliveries, attempts=attempts)
    total, going, after = Pruned(), True, 0
    while going:  # in id order from where the last batch ended: what it kept is not looked at again
        started = time.monotonic()
        with transaction(db):
            rows = db.execute(f"SELECT d.id, d.body_id, d.event_id FROM deliveries d WHERE d.id > ? AND {_FORGETTABLE}"
                              f" ORDER BY d.id LIMIT ?", (after, before, batch)).fetchall()
            total += _forget(db, rows)
        if len(rows) < batch:
            break
        after = rows[-1]["id"]
        going = rest(time.monotonic() - started)
    while going:
        started = time.monotonic()
        with transaction(db):
            ids = [i for (i,) in db.execute("SELECT id FROM attempts WHERE at < ? ORDER BY at LIMIT ?",
                                            (before, batch))]
            db.executemany("DELETE FROM attempts WHERE id = ?", [(i,) for i in ids])
        total += Pruned(attempts=len(ids))
        if len(ids) < batch:
            break
        going = rest(time.monotonic() - started)
    if total:
        log.info("webhook_state_pruned", before=datetime.fromtimestamp(before, timezone.utc).isoformat(),
                 deliveries=total.deliveries, attempts=total.attempts, bodies=total.bodies, events=total.events)
    return total


def _forget(db: Db, rows: list) -> Pruned:
    """Delete these deliveries, then their bodies and events that no other delivery uses."""
    if not rows:
        return Pruned()
    db.executemany("DELETE FROM deliveries WHERE id = ?", [(row["id"],) for row in rows])
    bodies = sorted({row["body_id"] for row in rows})
    events = sorted({row["event_id"] for row in rows})
    unused_bodies = db.execute(f"SELECT b.id FROM bodies b WHERE b.id IN ({','.join('?' * len(bodies))}) AND NOT"
                               f" EXISTS (SELECT 1 FROM deliveries d WHERE d.body_id = b.id)", bodies).fetchall()
    unused_events = db.execute(f"SELECT e.event_id FROM events e WHERE e.event_id IN ({','.join('?' * len(events))})"
                               f" AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.event_id)",
                               events).fetchall()
    db.executemany("DELETE FROM bodies WHERE id = ?", [tuple(r) for r in unused_bodies])
    db.executemany("DELETE FROM events WHERE event_id = ?", [tuple(r) for r in unused_events])
    return Pruned(deliveries=len(rows), bodies=len(unused_bodies), events=len(unused_events))
