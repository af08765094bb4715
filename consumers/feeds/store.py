"""The feed view on disk: one SQLite file, written in the same transaction as the Kafka positions.

Tables: ``versions`` (every version the view applied, as its Avro single-object payload, so
``/items/{id}?version=N`` can answer older versions), ``articles`` (each article's latest
version with its event id, the fields the view's indexes need, its cursor value, held flag and
change time, so that loading the view decodes no event and reads no payload: the view reads a
payload from ``versions`` when it needs one), ``feeds`` (when each feed last changed),
``positions`` (the next Kafka offset of each partition the view has taken in) and ``meta``.

Because the positions are committed with the view, the view is exact after any crash: at
start the consumer seeks to the stored positions (or to the beginning of the topic when the
file is new, which rebuilds the view from the log), whatever the group's committed offsets say.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from newswire import codec
from newswire.codec import ArticleEvent

from .view import Change, Entry, FeedView

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    article_id TEXT NOT NULL, version INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (article_id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY, version INTEGER NOT NULL, event_type TEXT NOT NULL,
    visible_us INTEGER NOT NULL, embargo_us INTEGER, feeds TEXT NOT NULL,
    seq INTEGER NOT NULL UNIQUE, changed_us INTEGER NOT NULL, held INTEGER NOT NULL, event_id TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feeds (name TEXT PRIMARY KEY, changed_us INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    previous_offset INTEGER,  -- next_offset before the last save that moved it
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""


def _us(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def _moment(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, timezone.utc)


def connect(path: Path) -> sqlite3.Connection:
    """A SQLite file of the feed server (made, with its directory, when new): autocommit, WAL,
    usable from any thread (its owner locks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    return db


class ViewStore:
    """A :class:`FeedView` persisted in ``path`` (SQLite, WAL, synchronous=FULL)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._add_event_ids()
        # A new file starts its cursor at the current time in microseconds, above every value an
        # earlier file (deleted, rebuilt from the topic) can have handed out: a poller holding
        # such a cursor gets everything again rather than missing anything.
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('head', ?)", (time.time_ns() // 1000,))

    def _add_event_ids(self) -> None:
        """A file from before articles had their event id: add the column and fill it (once)."""
        if "previous_offset" not in {row[1] for row in self._db.execute("PRAGMA table_info(positions)")}:
            self._db.execute("ALTER TABLE positions ADD COLUMN previous_offset INTEGER")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(articles)")}
        if "event_id" not in columns:
            self._db.execute("ALTER TABLE articles ADD COLUMN event_id TEXT")
        missing = self._db.execute(
            "SELECT a.article_id, v.payload FROM articles a JOIN versions v USING (article_id, version)"
            " WHERE a.event_id IS NULL").fetchall()
        if missing:
            self._db.executemany("UPDATE articles SET event_id = ? WHERE article_id = ?",
                                 [(str(codec.decode(payload)["event_id"]), article_id) for article_id, payload in missing])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def load(self, view: FeedView) -> int:
        """Fill the empty ``view`` with the stored state; return how many articles it holds."""
        with self._lock:  # the rows are read as the view takes them in, never all held at once
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            feeds = {name: _moment(us) for name, us in self._db.execute("SELECT name, changed_us FROM feeds")}
            rows = self._db.execute(
                "SELECT event_id, article_id, version, event_type, visible_us, embargo_us, feeds,"
                " seq, changed_us, held FROM articles")
            view.restore(self._entries(rows), head=meta.get("head", 0), stale=meta.get("stale", 0),
                         feed_changed=feeds)
        return len(view)

    def _entries(self, rows) -> Iterator[Entry]:
        """The entries of ``rows``, without their payloads (:meth:`payload` reads one when needed)."""
        names: dict[str, tuple[str, ...]] = {}  # one tuple per combination of feeds
        for event_id, article_id, version, event_type, visible_us, embargo_us, feeds, seq, changed_us, held in rows:
            yield Entry(event_id, article_id, version, event_type, _moment(visible_us),
                        None if embargo_us is None else _moment(embargo_us),
                        names.get(feeds) or names.setdefault(feeds, tuple(map(sys.intern, feeds.split()))),
                        seq, _moment(changed_us), bool(held), load=self.payload)

    def payload(self, article_id: str, version: int) -> bytes:
        """The stored payload of a version of an article (KeyError when it is not stored)."""
        with self._lock:
            row = self._db.execute("SELECT payload FROM versions WHERE article_id = ? AND version = ?",
                                   (article_id, version)).fetchone()
        if row is None:
            raise KeyError(f"version {version} of article {article_id!r} is not stored")
        return row[0]

    def positions(self, topic: str) -> dict[int, int]:
        """The next offset to read of each partition of ``topic`` the view has taken in."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT partition, next_offset FROM positions WHERE topic = ?", (topic,)))

    def previous_positions(self, topic: str) -> dict[int, int]:
        """Each partition's position before the last save that moved it: the offset the group
        commits last when a crash comes between a save and its commit."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT partition, previous_offset FROM positions WHERE topic = ? AND previous_offset IS NOT NULL",
                (topic,)))

    def save(self, changes: list[Change], view: FeedView, positions: dict[tuple[str, int], int]) -> None:
        """Write ``changes`` (taken from ``view``'s journal) and the Kafka positions in one transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for change in changes:
                    entry = change.entry
                    if change.kind == "version":
                        db.execute("INSERT OR IGNORE INTO versions VALUES (?, ?, ?)",
                                   (entry.article_id, entry.version, entry.payload))
                    db.execute("INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (entry.article_id, entry.version, entry.event_type, _us(entry.visible),
                                None if entry.embargo_until is None else _us(entry.embargo_until),
                                " ".join(entry.feeds), entry.seq, _us(entry.changed_at), int(entry.held),
                                entry.event_id))
                db.executemany("INSERT OR REPLACE INTO feeds VALUES (?, ?)",
                               [(name, _us(view.feed_changed(name))) for name in view.feeds()])
                db.executemany(
                    "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)"
                    " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset,"
                    " previous_offset = CASE WHEN positions.next_offset != excluded.next_offset"
                    " THEN positions.next_offset ELSE positions.previous_offset END",
                    [(topic, partition, offset) for (topic, partition), offset in positions.items()])
                head = max((change.entry.seq for change in changes), default=None)
                if head is not None:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('stale', ?)", (view.stale,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back itself (a full disk, an I/O error)
                    db.execute("ROLLBACK")
                raise

    def version(self, article_id: str, version: int) -> ArticleEvent | None:
        """A stored version of an article, or ``None``."""
        try:
            return codec.decode(self.payload(article_id, version))
        except KeyError:
            return None

    def versions(self, article_id: str) -> list[int]:
        with self._lock:
            return [v for (v,) in self._db.execute(
                "SELECT version FROM versions WHERE article_id = ? ORDER BY version", (article_id,))]
