"""The feed view on disk: one SQLite file, written in the same transaction as the Kafka positions.

Tables: ``versions`` (every version the view applied, as its Avro single-object payload, so
``/items/{id}?version=N`` can answer older versions), ``articles`` (each article's latest
version with its event id, the fields the view's indexes need, its cursor value, held flag and
change time: an entry is read from it without decoding an event), ``feed_items`` (which article
is in which feed at which visible time: a feed's page is a range of its primary key, newest
first), ``feeds`` (when each feed last changed, and how many articles it has), ``positions``
(the next Kafka offset of each partition the view has taken in) and ``meta``. Only this module
writes them.

The view keeps only its window in memory and reads the rest from here (:class:`ViewStore` is its
:class:`~.view.History`): a feed page below the window walks ``feed_items`` down from a key, a
cursor below the recent changes walks ``articles`` by its ``seq`` index, an article not in
memory is one primary-key look-up. Loading the view reads the newest changes and the held
embargoes, not the history. Reads go through a connection of their own (WAL: they never wait
for a save's commit).

Because the positions are committed with the view, the view is exact after any crash: at
start the consumer seeks to the stored positions (or to the beginning of the topic when the
file is new, which rebuilds the view from the log), whatever the group's committed offsets say.
"""

from __future__ import annotations

import functools
import sqlite3
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from newswire import codec, logs
from newswire.codec import ArticleEvent

from .view import Change, Entry, FeedView, Key

log = logs.get(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    article_id TEXT NOT NULL, version INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (article_id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY, version INTEGER NOT NULL, event_type TEXT NOT NULL,
    visible_us INTEGER NOT NULL, embargo_us INTEGER, feeds TEXT NOT NULL,
    seq INTEGER NOT NULL UNIQUE, changed_us INTEGER NOT NULL, held INTEGER NOT NULL, event_id TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS articles_held ON articles (seq) WHERE held = 1;
CREATE TABLE IF NOT EXISTS feed_items (
    feed TEXT NOT NULL, visible_us INTEGER NOT NULL, article_id TEXT NOT NULL,
    PRIMARY KEY (feed, visible_us, article_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY, changed_us INTEGER NOT NULL, articles INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    previous_offset INTEGER,  -- next_offset before the last save that moved it
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
_COLUMNS = "a.event_id, a.article_id, a.version, a.event_type, a.visible_us, a.embargo_us, a.feeds," \
           " a.seq, a.changed_us, a.held"
#: a feed's items, newest first (the primary key of feed_items backwards; each row's article by its key)
_FEED_PAGE = f"SELECT {_COLUMNS} FROM feed_items f CROSS JOIN articles a ON a.article_id = f.article_id" \
             " WHERE f.feed = ? {below} ORDER BY f.visible_us DESC, f.article_id DESC LIMIT ?"


def _us(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


def _moment(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, timezone.utc)


@functools.lru_cache(maxsize=4096)
def _feed_names(feeds: str) -> tuple[str, ...]:
    """``"all lang-en category-politics"`` → one tuple per combination of feeds, one string per name."""
    return tuple(map(sys.intern, feeds.split()))


def _entry(row: tuple, load) -> Entry:
    event_id, article_id, version, event_type, visible_us, embargo_us, feeds, seq, changed_us, held = row
    return Entry(event_id, article_id, version, event_type, _moment(visible_us),
                 None if embargo_us is None else _moment(embargo_us), _feed_names(feeds), seq,
                 _moment(changed_us), bool(held), load=load)


def connect(path: Path) -> sqlite3.Connection:
    """A SQLite file of the feed server (made, with its directory, when new): autocommit, WAL,
    usable from any thread (its owner locks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    return db


class ViewStore:
    """A :class:`FeedView` persisted in ``path`` (SQLite, WAL, synchronous=FULL), and the
    view's :class:`~.view.History`: what it does not keep in memory is read from here."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._upgrade()
        # A new file starts its cursor at the current time in microseconds, above every value an
        # earlier file (deleted, rebuilt from the topic) can have handed out: a poller holding
        # such a cursor gets everything again rather than missing anything.
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('head', ?)", (time.time_ns() // 1000,))
        #: the readers' connection: never waits for a save in progress (WAL)
        self._read_lock = threading.Lock()
        self._reader = connect(path)

    def _upgrade(self) -> None:
        """Bring a file written by an older newswire up to this schema (once): the positions'
        previous offsets, the articles' event ids, the feeds' counts and ``feed_items``."""
        db = self._db
        if "previous_offset" not in {row[1] for row in db.execute("PRAGMA table_info(positions)")}:
            db.execute("ALTER TABLE positions ADD COLUMN previous_offset INTEGER")
        if "event_id" not in {row[1] for row in db.execute("PRAGMA table_info(articles)")}:
            db.execute("BEGIN IMMEDIATE")  # the column and its values together: a file never has one without the other
            db.execute("ALTER TABLE articles ADD COLUMN event_id TEXT")
            db.executemany("UPDATE articles SET event_id = ? WHERE article_id = ?", [
                (str(codec.decode(payload)["event_id"]), article_id) for article_id, payload in db.execute(
                    "SELECT a.article_id, v.payload FROM articles a JOIN versions v USING (article_id, version)"
                ).fetchall()])
            db.execute("COMMIT")
        if "articles" not in {row[1] for row in db.execute("PRAGMA table_info(feeds)")}:
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute("ALTER TABLE feeds ADD COLUMN articles INTEGER NOT NULL DEFAULT 0")
            db.executemany("INSERT INTO feed_items VALUES (?, ?, ?)", sorted(  # in key order: appended, not scattered
                (feed, visible_us, article_id)
                for article_id, visible_us, feeds in db.execute("SELECT article_id, visible_us, feeds FROM articles")
                for feed in map(sys.intern, feeds.split())))
            db.execute("UPDATE feeds SET articles = (SELECT count(*) FROM feed_items WHERE feed = feeds.name)")
            db.execute("COMMIT")
            log.info("feed_view_upgraded", path=str(self.path), seconds=round(time.perf_counter() - started, 1),
                     what="feed_items and feed counts, for a view that keeps only its window in memory")

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._db.close()
            self._reader.close()

    def load(self, view: FeedView) -> int:
        """Make the empty ``view`` this store's: it loads its newest changes and held embargoes
        (not the history, which it reads from here when asked); return how many articles it has."""
        with self._read_lock:
            meta = dict(self._reader.execute("SELECT key, value FROM meta"))
            feeds = {name: (_moment(us), count)
                     for name, us, count in self._reader.execute("SELECT name, changed_us, articles FROM feeds")}
        view.restore(self, head=meta.get("head", 0), stale=meta.get("stale", 0), feeds=feeds)
        return len(view)

    # --- the view's history -----------------------------------------------------------------

    def _read(self, sql: str, *args: object) -> list[Entry]:
        with self._read_lock:
            rows = self._reader.execute(sql, args).fetchall()
        return [_entry(row, self.payload) for row in rows]

    def entry(self, article_id: str) -> Entry | None:
        found = self._read(f"SELECT {_COLUMNS} FROM articles a WHERE a.article_id = ?", article_id)
        return found[0] if found else None

    def feed_entries(self, feed: str, below: Key | None, limit: int) -> list[Entry]:
        if below is None:
            return self._read(_FEED_PAGE.format(below=""), feed, limit)
        return self._read(_FEED_PAGE.format(below="AND (f.visible_us, f.article_id) < (?, ?)"),
                          feed, _us(below[0]), below[1], limit)

    def changed_entries(self, after: int, upto: int, limit: int) -> list[Entry]:
        return self._read(f"SELECT {_COLUMNS} FROM articles a WHERE a.seq > ? AND a.seq <= ? ORDER BY a.seq LIMIT ?",
                          after, upto, limit)

    def newest_changes(self, limit: int) -> list[Entry]:
        return self._read(f"SELECT {_COLUMNS} FROM articles a ORDER BY a.seq DESC LIMIT ?", limit)

    def held_entries(self) -> list[Entry]:
        return self._read(f"SELECT {_COLUMNS} FROM articles a WHERE a.held = 1")

    def payload(self, article_id: str, version: int) -> bytes:
        """The stored payload of a version of an article (KeyError when it is not stored)."""
        with self._read_lock:
            row = self._reader.execute("SELECT payload FROM versions WHERE article_id = ? AND version = ?",
                                       (article_id, version)).fetchone()
        if row is None:
            raise KeyError(f"version {version} of article {article_id!r} is not stored")
        return row[0]

    # --- positions and saves ----------------------------------------------------------------

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
        feeds, stale = view.feed_stats(), view.stale  # read before the lock: the view reads from here under its own
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for change in changes:
                    self._write(change)
                db.executemany("INSERT OR REPLACE INTO feeds (name, changed_us, articles) VALUES (?, ?, ?)",
                               [(name, _us(changed), count) for name, (changed, count) in feeds.items()])
                db.executemany(
                    "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)"
                    " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset,"
                    " previous_offset = CASE WHEN positions.next_offset != excluded.next_offset"
                    " THEN positions.next_offset ELSE positions.previous_offset END",
                    [(topic, partition, offset) for (topic, partition), offset in positions.items()])
                head = max((change.entry.seq for change in changes), default=None)
                if head is not None:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('stale', ?)", (stale,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back itself (a full disk, an I/O error)
                    db.execute("ROLLBACK")
                raise

    def _write(self, change: Change) -> None:
        """One change, inside :meth:`save`'s transaction: its version, the article's row, its feed items."""
        db, entry = self._db, change.entry
        if change.kind == "version":
            db.execute("INSERT OR IGNORE INTO versions VALUES (?, ?, ?)", (entry.article_id, entry.version, entry.payload))
        visible, feeds = _us(entry.visible), " ".join(entry.feeds)
        before = db.execute("SELECT visible_us, feeds FROM articles WHERE article_id = ?", (entry.article_id,)).fetchone()
        if before != (visible, feeds):
            if before is not None:
                db.executemany("DELETE FROM feed_items WHERE feed = ? AND visible_us = ? AND article_id = ?",
                               [(feed, before[0], entry.article_id) for feed in before[1].split()])
            db.executemany("INSERT INTO feed_items VALUES (?, ?, ?)",
                           [(feed, visible, entry.article_id) for feed in entry.feeds])
        db.execute("INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (entry.article_id, entry.version, entry.event_type, visible,
                    None if entry.embargo_until is None else _us(entry.embargo_until),
                    feeds, entry.seq, _us(entry.changed_at), int(entry.held), entry.event_id))

    def version(self, article_id: str, version: int) -> ArticleEvent | None:
        """A stored version of an article, or ``None``."""
        try:
            return codec.decode(self.payload(article_id, version))
        except KeyError:
            return None

    def versions(self, article_id: str) -> list[int]:
        with self._read_lock:
            return [v for (v,) in self._reader.execute(
                "SELECT version FROM versions WHERE article_id = ? ORDER BY version", (article_id,))]
