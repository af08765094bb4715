"""The archive's SQLite index: which segment files exist and how much of each is durable,
and, per event, where it is stored and where it came from.

An event is in the archive exactly when its row is here: rows are written in the same
transaction that records the segments' new durable sizes, after the blocks holding the
events were fsynced, and before the consumer commits its Kafka offsets. ``event_id`` is
the primary key, so an event read twice (a replay, a redelivery after a crash) is stored once.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from newswire import sqlite_rows
from newswire.sql_in import select_in

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    path            TEXT PRIMARY KEY,     -- relative to the archive root, events/YYYY/MM/DD/....avro
    day             TEXT NOT NULL,        -- publish date (UTC) of every event in it
    schema_version  INTEGER NOT NULL,     -- the writer schema of its events (the container's schema)
    durable_size    INTEGER NOT NULL,     -- bytes known complete: header + committed blocks (0: none yet)
    created_at      TEXT NOT NULL,
    sealed          INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY,  -- archive order (the order events were consumed)
    event_id        TEXT NOT NULL UNIQUE,
    article_id      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    event_type      TEXT NOT NULL,
    occurred_at     INTEGER NOT NULL,     -- ms since the epoch, from the event
    published_at    INTEGER NOT NULL,     -- ms since the epoch, the Kafka record timestamp
    categories      TEXT NOT NULL,        -- JSON array
    topic           TEXT NOT NULL,
    partition       INTEGER NOT NULL,
    "offset"        INTEGER NOT NULL,
    segment         TEXT NOT NULL REFERENCES segments(path),
    block_offset    INTEGER NOT NULL,     -- byte offset of the Avro block in the segment
    block_index     INTEGER NOT NULL,     -- position of the record in that block
    cleaned         INTEGER NOT NULL DEFAULT 0  -- 1: its cleaning seal verified when archived (newswire.seal)
);
CREATE INDEX IF NOT EXISTS events_article ON events(article_id, version);
CREATE INDEX IF NOT EXISTS events_published ON events(published_at);
CREATE INDEX IF NOT EXISTS events_position ON events(topic, partition, "offset");
CREATE INDEX IF NOT EXISTS events_block ON events(segment, block_offset);
CREATE TABLE IF NOT EXISTS event_categories (
    category        TEXT NOT NULL,
    seq             INTEGER NOT NULL REFERENCES events(seq),
    PRIMARY KEY (category, seq)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Segment:
    path: str
    day: str
    schema_version: int
    durable_size: int
    sealed: bool


@dataclass(frozen=True)
class Entry:
    """One archived event as the index knows it."""

    seq: int
    event_id: str
    article_id: str
    version: int
    event_type: str
    occurred_at: int
    published_at: int
    categories: tuple[str, ...]
    topic: str
    partition: int
    offset: int
    segment: str
    block_offset: int
    block_index: int
    #: its cleaning seal verified when it was archived (:mod:`newswire.seal`)
    cleaned: bool = False

    @property
    def published(self) -> datetime:
        return datetime.fromtimestamp(self.published_at / 1000, tz=timezone.utc)

    @property
    def occurred(self) -> datetime:
        return datetime.fromtimestamp(self.occurred_at / 1000, tz=timezone.utc)


_ENTRY_COLUMNS = ('seq, event_id, article_id, version, event_type, occurred_at, published_at, categories, '
                  'topic, partition, "offset", segment, block_offset, block_index, cleaned')


def _entry(row: tuple) -> Entry:
    values = list(row)
    values[7] = tuple(json.loads(values[7]))
    values[14] = bool(values[14])
    return Entry(*values)


#: the columns of an archived event's row, as :meth:`Index.commit` takes them
_EVENT_COLUMNS = ("event_id", "article_id", "version", "event_type", "occurred_at", "published_at", "categories",
                  "topic", "partition", "offset", "segment", "block_offset", "block_index", "cleaned")
_QUOTED_COLUMNS = ", ".join(f'"{column}"' for column in _EVENT_COLUMNS)  # "offset" is a keyword


class Index:
    """The SQLite index of one archive (``<root>/index.sqlite``), WAL mode, fully synchronous."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no archive index at {self.path}")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # the archive's writer thread writes (one thread at a time: see Archiver.take)
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            if "cleaned" not in self._columns():  # an archive made before the column
                self.db.execute("ALTER TABLE events ADD COLUMN cleaned INTEGER NOT NULL DEFAULT 0")
            self.db.commit()
        #: the columns of an entry (an older archive read as is: none of its events cleaned)
        self._entry_columns = _ENTRY_COLUMNS if "cleaned" in self._columns() else \
            _ENTRY_COLUMNS.replace("cleaned", "0 AS cleaned")

    def _columns(self) -> set[str]:
        return {row[1] for row in self.db.execute("PRAGMA table_info(events)")}

    def close(self) -> None:
        self.db.close()

    # --- segments -----------------------------------------------------------------------

    def add_segment(self, path: str, day: str, schema_version: int) -> None:
        """Register a segment before its file is created, so a crash leaves no unknown file."""
        with self.db:
            self.db.execute(
                "INSERT INTO segments(path, day, schema_version, durable_size, created_at) VALUES (?, ?, ?, 0, ?)",
                (path, day, schema_version, datetime.now(timezone.utc).isoformat()))

    def segments(self) -> list[Segment]:
        rows = self.db.execute(
            "SELECT path, day, schema_version, durable_size, sealed FROM segments ORDER BY path").fetchall()
        return [Segment(p, d, v, s, bool(sealed)) for p, d, v, s, sealed in rows]

    def seal_all(self) -> None:
        with self.db:
            self.db.execute("UPDATE segments SET sealed = 1 WHERE sealed = 0")

    def forget_segment(self, path: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM segments WHERE path = ?", (path,))

    # --- events -------------------------------------------------------------------------

    def known(self, event_ids: list[str]) -> set[str]:
        """Which of ``event_ids`` are archived (a query per 500)."""
        return {i for (i,) in select_in(self.db.execute, "SELECT event_id FROM events WHERE event_id IN (...)",
                                        event_ids)}

    def commit(self, rows: Iterable[dict], sizes: dict[str, int]) -> None:
        """Record new events and the segments' new durable sizes in one transaction."""
        with self.db:
            (last,) = self.db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            # in one statement: the archive's writer thread runs beside the busy consume loop
            sqlite_rows.executemany(self.db, f"INSERT INTO events({_QUOTED_COLUMNS})"
                                    f" VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})",
                                    [tuple(row[c] for c in _EVENT_COLUMNS) for row in rows])
            self.db.execute("INSERT OR IGNORE INTO event_categories(category, seq) SELECT c.value, e.seq"
                            " FROM events AS e, json_each(e.categories) AS c WHERE e.seq > ?", (last,))
            self.db.executemany("UPDATE segments SET durable_size = ? WHERE path = ?",
                                [(size, path) for path, size in sizes.items()])

    def versions(self, article_id: str) -> list[Entry]:
        rows = self.db.execute(f"SELECT {self._entry_columns} FROM events WHERE article_id = ? ORDER BY version, seq",
                               (article_id,)).fetchall()
        return [_entry(r) for r in rows]

    def article_of(self, event_id: str) -> str | None:
        """The article an archived event belongs to (None: not archived)."""
        row = self.db.execute("SELECT article_id FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return row[0] if row else None

    def entries(self, *, since_ms: int | None = None, until_ms: int | None = None,
                category: str | None = None, topic: str | None = None,
                segment: str | None = None, by_position: bool = False, by_published: bool = False
                ) -> Iterator[Entry]:
        """Archived events published in ``[since, until)``, optionally of one category, in archive
        order (or by topic, partition and offset: the order a partition replay reads Kafka in; or
        by publication time, then article and version: ``archive list``)."""
        where, params = [], []
        if since_ms is not None:
            where.append("published_at >= ?")
            params.append(since_ms)
        if until_ms is not None:
            where.append("published_at < ?")
            params.append(until_ms)
        if category is not None:
            where.append("seq IN (SELECT seq FROM event_categories WHERE category = ?)")
            params.append(category)
        if topic is not None:
            where.append("topic = ?")
            params.append(topic)
        if segment is not None:
            where.append("segment = ?")
            params.append(segment)
        sql = f"SELECT {self._entry_columns} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = (' ORDER BY topic, partition, "offset"' if by_position else
                 " ORDER BY published_at, article_id, version, seq" if by_published else " ORDER BY seq")
        for row in self.db.execute(sql + order, params):
            yield _entry(row)

    def in_offset_order(self, topic: str) -> bool:
        """Whether archive order (``seq``) keeps every partition of ``topic`` in offset order, as
        it does unless the archive's consumer group was reset past events and back; then a
        partition replay reads by position instead."""
        return self.db.execute(
            'SELECT 1 FROM (SELECT "offset", lag("offset") OVER (PARTITION BY partition ORDER BY seq) AS before'
            " FROM events WHERE topic = ?) WHERE before > \"offset\" LIMIT 1", (topic,)).fetchone() is None

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM events").fetchone()[0]
