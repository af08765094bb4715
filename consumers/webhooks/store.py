"""The pusher's durable state: one SQLite file under ``settings.home`` (the embedded default,
one pusher process), or one PostgreSQL database named by ``NEWSWIRE_STATE_URL`` (any number
of pushers on any number of machines, see :mod:`.leases`). Both through :mod:`.dialect`.

It holds the partner registry, the outbox (one row per delivery, i.e. per sequence number
of a partner, with its event, attempts spent and next attempt time; its body is a row of
``bodies``, one per event and format whatever the number of partners, the sequence number
put in when it goes) and the receipts (one row per HTTP attempt). The live path queues an
event at most once per partner; a replay may queue an event the partner already got once
more, under a new number, so (partner, event) is not unique; (partner, seq) is. One store,
so that enqueueing an event for its partners, numbering it and recording what each partner
was sent is one transaction.

Its schema is versioned (SQLite: ``PRAGMA user_version``; PostgreSQL: the ``schema_version``
table; :data:`VERSION`): :func:`connect` brings an older state up to date in place, one
numbered step of :data:`MIGRATIONS` after another (the same steps in both stores), and
refuses a state written by a newer release.

SQLite in WAL mode lets the Kafka thread, the asyncio side and operator commands
(``newswire partners``, ``newswire deliveries``) use the file at the same time, each
through its own connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

from newswire.config import Settings
from newswire.consumers.webhooks import dialect
from newswire.consumers.webhooks.dialect import Db
from newswire.errors import Refused

# The schema of the first release (version 1); every change since is a numbered step in MIGRATIONS.
SCHEMA = """
CREATE TABLE IF NOT EXISTS partners (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    url             TEXT NOT NULL,
    format          TEXT NOT NULL,
    filters         TEXT NOT NULL,           -- JSON, see filters.Subscription
    concurrency     INTEGER NOT NULL,
    rate_limit      REAL NOT NULL,           -- requests per second, 0 = unlimited
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    secrets         TEXT NOT NULL,           -- JSON list: [current] or [current, previous]
    allow_cidrs     TEXT NOT NULL,           -- JSON list of CIDRs this partner may resolve to
    next_seq        INTEGER NOT NULL DEFAULT 1,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id   TEXT PRIMARY KEY,
    article_id TEXT NOT NULL,
    version    INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    avro       BLOB NOT NULL                  -- the event as read from Kafka (dead letters, redrive)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    article_id      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    event_type      TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    content_type    TEXT NOT NULL,
    payload         BLOB NOT NULL,
    status          TEXT NOT NULL,            -- pending | delivered | dead
    attempts        INTEGER NOT NULL DEFAULT 0,  -- of the retry budget (a 429/503 with Retry-After spends none)
    tries           INTEGER NOT NULL DEFAULT 0,  -- HTTP requests made
    next_attempt_at REAL NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    delivered_at    REAL,
    UNIQUE (partner_id, seq)                  -- not (partner_id, event_id): replays send an event again
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (partner_id, status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_article ON deliveries (article_id, partner_id, version);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
CREATE TABLE IF NOT EXISTS attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     INTEGER NOT NULL,
    partner_id      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    article_id      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    at              REAL NOT NULL,
    status_code     INTEGER,
    duration_ms     REAL NOT NULL,
    error           TEXT,
    outcome         TEXT NOT NULL,            -- delivered | retry | throttled | dead | gone
    next_attempt_at REAL
);
CREATE INDEX IF NOT EXISTS attempts_partner ON attempts (partner_id, at);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
"""


# Step N brings a file from version N - 1 to N. Steps are appended, never edited: an
# installation upgrades in place by running the steps it has not run yet, in order.
MIGRATIONS: tuple[str, ...] = (
    SCHEMA,
    # 2: when a partner was disabled (what it missed starts there)
    "ALTER TABLE partners ADD COLUMN disabled_at REAL;",
    # 3: until when a partner asked (Retry-After) not to be called, whichever process sends; when
    # a process other than the pusher last changed its deliveries (redrive, resend)
    "ALTER TABLE partners ADD COLUMN paused_until REAL;\n"
    "ALTER TABLE partners ADD COLUMN outbox_changed_at REAL;",
    # 4: a body is kept once per event and format for all its partners, the sequence number put
    # in when it goes (a delivery from before keeps its own whole body); the pusher's look at
    # what is pending reads an index, not the table
    """
CREATE TABLE bodies (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    head     BLOB NOT NULL,                  -- the body before its sequence number
    tail     BLOB                            -- after it; NULL: the body carries no number (head is all)
);
INSERT INTO bodies (id, event_id, head, tail) SELECT id, event_id, payload, NULL FROM deliveries;
CREATE TABLE deliveries_4 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    article_id      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    event_type      TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    content_type    TEXT NOT NULL,
    body_id         INTEGER NOT NULL REFERENCES bodies (id),
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    tries           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    delivered_at    REAL,
    UNIQUE (partner_id, seq)
);
INSERT INTO deliveries_4 (id, partner_id, event_id, article_id, version, event_type, seq, content_type, body_id,
                          status, attempts, tries, next_attempt_at, last_status, last_error, created_at, delivered_at)
    SELECT id, partner_id, event_id, article_id, version, event_type, seq, content_type, id,
           status, attempts, tries, next_attempt_at, last_status, last_error, created_at, delivered_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_4 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (partner_id, status, next_attempt_at);
CREATE INDEX deliveries_article ON deliveries (article_id, partner_id, version);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_pending ON deliveries (id, next_attempt_at, attempts) WHERE status = 'pending';
""",
    # 5: the pushers sharing a state, and which of them sends for which partner (see leases.py;
    #    used on PostgreSQL: a SQLite file has one pusher, its lock's holder)
    """
CREATE TABLE pushers (
    id        TEXT PRIMARY KEY,              -- host:pid:random, new for every start
    host      TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    seen_at   REAL NOT NULL                  -- its last heartbeat, on the database's clock
);
CREATE TABLE partner_leases (
    partner_id TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,                -- a pushers.id ('' = nobody)
    expires_at REAL NOT NULL                 -- on the database's clock; renewed by the owner's heartbeat
);
""",
    # 6: the partner API's tokens (only their SHA-256 is kept) and its audit log (see
    #    newswire.consumers.partner_api: tokens.py and audit.py are their one writers)
    """
CREATE TABLE partner_tokens (
    id           TEXT PRIMARY KEY,           -- tok_<hex>: shown to operators and the partner, not a secret
    partner_id   TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,       -- hex SHA-256 of the token; the token itself is never stored
    hint         TEXT NOT NULL,              -- its first characters, to recognise it in a list
    label        TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL,                       -- NULL: valid until revoked
    revoked_at   REAL,
    last_used_at REAL,
    replaced_by  TEXT                        -- the token a rotation issued in its place
);
CREATE INDEX partner_tokens_partner ON partner_tokens (partner_id);
CREATE TABLE partner_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         REAL NOT NULL,
    partner_id TEXT,                         -- NULL: the caller was not authenticated
    token_id   TEXT,
    remote     TEXT,
    action     TEXT NOT NULL,                -- the method and route, e.g. POST /v1/resend
    status     INTEGER NOT NULL,             -- the HTTP status answered
    detail     TEXT
);
CREATE INDEX partner_audit_partner ON partner_audit (partner_id, id);
""",
    # 7: one cursor per partner across transports, and strict order (see pull.py, ordering.py): how a
    #    partner takes its deliveries (push: the pusher sends them; pull: it fetches them, GET
    #    /v1/changes) and in what order (article: per article; strict: one at a time by number); the
    #    dead deliveries a strict partner's line passes (those numbered up to strict_skipped); when a
    #    pull last handed a delivery out; which attempts were a pull's acknowledgement
    """
ALTER TABLE partners ADD COLUMN mode TEXT NOT NULL DEFAULT 'push';
ALTER TABLE partners ADD COLUMN ordering TEXT NOT NULL DEFAULT 'article';
ALTER TABLE partners ADD COLUMN strict_skipped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN pulled_at REAL;
ALTER TABLE attempts ADD COLUMN via TEXT NOT NULL DEFAULT 'push';
CREATE INDEX deliveries_unacknowledged ON deliveries (partner_id, seq) WHERE status != 'delivered';
""",
    # 8: until when a rotation's previous secret still signs (NULL: until it is ended, as every
    #    rotation was before this step; see partners.rotate_secret)
    "ALTER TABLE partners ADD COLUMN previous_secret_until REAL;",
    # 9: retention (outbox.prune): what was delivered before a time, receipts before a time, and
    #    whether any delivery still uses a body
    """
CREATE INDEX deliveries_delivered ON deliveries (delivered_at) WHERE status = 'delivered';
CREATE INDEX deliveries_body ON deliveries (body_id);
CREATE INDEX attempts_at ON attempts (at);
""",
    # 10: how many times a process other than the pusher made a delivery go again (resend,
    #     redrive): the receipt of an attempt sent before that leaves the delivery pending
    """
ALTER TABLE deliveries ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
""",
    # 11: each partner's failed attempts in a row since it last answered (2xx or 410) and the last
    #     of them, kept as receipts are written (partners.note_attempts), so that the status page
    #     and /metrics read them per partner instead of counting receipts at every scrape
    """
ALTER TABLE partners ADD COLUMN failing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE partners ADD COLUMN last_failure_at REAL;
UPDATE partners SET
    failing = (SELECT count(*) FROM attempts a WHERE a.partner_id = partners.id AND a.outcome IN ('retry', 'dead')
               AND a.at > coalesce((SELECT max(b.at) FROM attempts b WHERE b.partner_id = partners.id
                                    AND b.outcome IN ('delivered', 'gone')), 0)),
    last_failure_at = (SELECT max(a.at) FROM attempts a WHERE a.partner_id = partners.id
                       AND a.outcome IN ('retry', 'dead')
                       AND a.at > coalesce((SELECT max(b.at) FROM attempts b WHERE b.partner_id = partners.id
                                            AND b.outcome IN ('delivered', 'gone')), 0));
""",
)
VERSION = len(MIGRATIONS)


class StateTooNew(Refused):
    """The state file was written by a newer newswire than this one."""


def path_of(settings: Settings) -> Path:
    return settings.home / "webhooks.sqlite3"


def lock_path(settings: Settings) -> Path:
    """The lock the one pusher of the state file holds (beside it)."""
    return settings.home / "webhooks.sqlite3.lock"


def shared(settings: Settings) -> bool:
    """Whether the state may be shared by several pushers (PostgreSQL), or has one (SQLite)."""
    return settings.state_url is not None


def exists(settings: Settings) -> bool:
    """Whether there is a state to read (a PostgreSQL state is created on first connect)."""
    return shared(settings) or path_of(settings).exists()


def connect(settings: Settings, *, synchronous: str = "FULL") -> Db:
    """A connection to the state, created or upgraded to :data:`VERSION` first.

    SQLite: ``synchronous=FULL`` (the default) makes a commit durable against power loss, as
    the enqueue before a Kafka offset commit needs; receipts may use ``NORMAL`` (durable
    against a crash of the process, which is what a kill -9 is). PostgreSQL commits are
    durable as its server is configured (``synchronous_commit``).
    """
    if settings.state_url:
        try:
            db: Db = dialect.connect_postgres(settings.state_url)
        except dialect.psycopg.OperationalError as exc:
            raise StateUnavailable(f"webhook state {settings.state_shown}: cannot connect: "
                                   f"{str(exc).strip().splitlines()[0]}") from exc
        migrate(db, settings.state_shown)
        return db
    path = path_of(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = dialect.connect_sqlite(str(path), synchronous=synchronous)
    migrate(db, path)
    return db


class StateUnavailable(Refused):
    """The PostgreSQL server of the state cannot be reached."""


#: PostgreSQL: the transaction-level advisory lock that makes processes starting at once
#: upgrade a state once
_MIGRATION_LOCK = 0x6E657773  # "news"


T = TypeVar("T")


class AsyncStore:
    """The state for asyncio code: each call in a worker thread with a connection of its own
    (opened on the thread's first call, kept between calls: a PostgreSQL connection costs more
    to open than a request's queries take). SQLite has one writer at a time: one thread
    (several would wait on each other's locks); PostgreSQL: ``workers``. ``synchronous`` as
    :func:`connect`'s. A connection a call failed on, or left in a transaction, is closed
    (it may be broken) and the thread's next call opens another."""

    def __init__(self, settings: Settings, *, workers: int = 4, synchronous: str = "FULL"):
        self.settings = settings
        self.synchronous = synchronous
        self._pool = ThreadPoolExecutor(max_workers=workers if shared(settings) else 1,
                                        thread_name_prefix="webhook-state")
        self._local = threading.local()
        self._opened: set[Db] = set()
        self._lock = threading.Lock()

    def _call(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.settings, synchronous=self.synchronous)
            with self._lock:
                self._opened.add(db)
        try:
            result = fn(db, *args, **kwargs)
        except BaseException:
            self._forget(db)
            raise
        if db.in_transaction:
            self._forget(db)
        return result

    def _forget(self, db: Db) -> None:
        self._local.db = None
        with self._lock:
            self._opened.discard(db)
        db.close()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(db, *args, **kwargs)`` in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn, args, kwargs)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, set()
        for db in opened:
            db.close()


def schema_version(db: Db) -> int:
    """The version of a state; a SQLite file from before versioning (it has tables) is 1."""
    if isinstance(db, dialect.PostgresDb):
        # the catalog read as a table (to_regclass may answer from a cache that has not seen a
        # concurrent migration commit yet)
        if not db.execute("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
                          " AND tablename = 'schema_version'").fetchone()[0]:
            return 0
        return db.execute("SELECT version FROM schema_version").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'partners'").fetchone():
        return 1
    return version


def set_version(db: Db, version: int) -> None:
    if isinstance(db, dialect.PostgresDb):
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        db.execute("DELETE FROM schema_version")
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    else:
        db.execute(f"PRAGMA user_version = {version}")


def migrate(db: Db, where: Path | str = "state", *, to: int = VERSION) -> None:
    """Run the steps the state has not had, up to version ``to``, in one write transaction (so
    that processes opening the same state at once upgrade it once); refuse a state newer than
    this code."""
    if schema_version(db) == to:
        return
    with db.transaction():
        if isinstance(db, dialect.PostgresDb):
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        current = schema_version(db)
        if current > VERSION:
            raise StateTooNew(f"{where} is webhook state version {current}, newer than this newswire's "
                              f"{VERSION}: run the newswire release that wrote it (or a later one)")
        for step in MIGRATIONS[current:to]:
            for statement in _statements(step):
                db.script(statement)
        set_version(db, to)


def _statements(script: str) -> list[str]:
    """The statements of an SQL script, split where SQLite itself sees each one end
    (``executescript`` would commit the migration's transaction)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")
    return statements
