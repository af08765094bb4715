"""The pusher's durable state: one SQLite file under ``settings.home``.

It holds the partner registry, the outbox (one row per delivery, i.e. per sequence number
of a partner, with its event, payload, attempts spent and next attempt time) and the
receipts (one row per HTTP attempt). The live path queues an event at most once per
partner; a replay may queue an event the partner already got once more, under a new
number, so (partner, event) is not unique; (partner, seq) is. (A file made before that
change keeps its old UNIQUE (partner_id, event_id) and cannot take such a replay: start a
new file.) One file, so that enqueueing an event for its partners, numbering it and
recording what each partner was sent is one transaction.

SQLite in WAL mode lets the Kafka thread, the asyncio side and operator commands
(``newswire partners``, ``newswire deliveries``) use the file at the same time, each
through its own connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from newswire.config import Settings

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


def path_of(settings: Settings) -> Path:
    return settings.home / "webhooks.sqlite3"


def lock_path(settings: Settings) -> Path:
    """The lock the one pusher of the state file holds (beside it)."""
    return settings.home / "webhooks.sqlite3.lock"


def connect(settings: Settings, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection to the state file (created with its schema if new).

    ``synchronous=FULL`` (the default) makes a commit durable against power loss, as the
    enqueue before a Kafka offset commit needs; receipts may use ``NORMAL`` (durable
    against a crash of the process, which is what a kill -9 is).
    """
    path = path_of(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(SCHEMA)
    return db
