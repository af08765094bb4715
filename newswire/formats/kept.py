"""Render once: the bytes of each event in each format, made once and kept.

:class:`Renders` keeps, per (event id, format), the item as it stands inside a feed or
message (the format's :class:`~newswire.formats.registry.Assembly` fragment), and assembles
feeds, newsMessages, change lists and pushes from those bytes: a feed of 100 items seen
before is a join, not 100 renders. What it keeps is bounded: an LRU in memory of at most
``max_bytes``, and, when given a ``path``, an SQLite file (zstd-compressed rows, a cache: it
may be deleted at any time) that history answers come back from without rendering again.

The file says what made its bytes (:func:`made_by`: the authority and a fingerprint of the
renderers' code) and its layout (``PRAGMA user_version``, :data:`LAYOUT`); a file made by other
code, for another authority or in another layout is emptied when it is opened, so a new release
never serves what an older renderer made. Its rows are zstd at level 1 (a 4.6 KB ninjs item in
18 µs, a third of zlib's time at level 1, for the same 3.7x) in a rowid table with a unique
index (a ``WITHOUT ROWID`` table of such rows took 3.5x the disk and twice the time to write).

Safety is the renderers' (:func:`newswire.formats.prepare`): every event is cleaned and
sanitised when it is rendered unless its cleaning seal verified (:mod:`newswire.seal`: the HMAC
of newswire's producer, checked by the consumer that read it), so an event that bypassed the
producer never puts active content into an output; keeping the bytes only means that this
happens once per event and format instead of once per output.

Keys are event ids: the producer gives every event a new UUID. The kept bytes of an event id
are never replaced (a second, different event under the same id, which only a writer that
bypassed the producer can make, gets the first one's bytes, which are sanitised all the same).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import zstandard

from newswire import logs
from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY
from newswire.formats.registry import Channel, Format
from newswire.sql_in import select_in
from newswire.sqlite_rows import executemany

log = logs.get(__name__)

#: default memory bound of the kept bytes
MAX_BYTES = 64 * 1024 * 1024
#: rows written to the file in one transaction
WRITE_BATCH = 256
#: the file's layout (``PRAGMA user_version``): 1 was zlib rows in a ``WITHOUT ROWID`` table
LAYOUT = 2
_SCHEMA = ("CREATE TABLE renders (event_id TEXT NOT NULL, format TEXT NOT NULL, data BLOB NOT NULL,"
           " UNIQUE (event_id, format));"
           "CREATE TABLE made_by (what TEXT NOT NULL);")
#: the modules whose code makes the kept bytes (with the vocabularies' data): the formats, the
#: cleaning, the event contract and the seal's mark
_RENDERERS = ("newswire.formats", "newswire.sanitize", "newswire.events", "newswire.seal", "newswire.mediatopics")


class _Failed(str):
    """Why an event cannot be rendered in a format (kept like bytes, so it is tried once)."""


class Renders:
    """The kept bytes of events in formats, minted by ``authority`` (see module doc)."""

    def __init__(self, authority: str = EXAMPLE_AUTHORITY, *, max_bytes: int = MAX_BYTES, path: Path | None = None):
        self.authority = authority
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._memory: OrderedDict[tuple[str, str], bytes | _Failed] = OrderedDict()
        self._size = 0
        #: renders made, and answers from memory or disk (for tests and benchmarks)
        self.made = self.hits = 0
        self._disk_warned = -60.0
        #: rows for the file not written yet (written WRITE_BATCH at a time, and by close)
        self._unwritten: list[tuple[str, str, bytes]] = []
        self._db: sqlite3.Connection | None = None
        # used under the lock (not thread-safe). Compressing in a thread of its own while the
        # renders go on cost more than it saved: the two took turns at the interpreter lock
        # (a replay's reading process, 0.28 -> 0.41 ms an event against 0.27 in line)
        self._compress = zstandard.ZstdCompressor(level=1).compress
        self._decompress = zstandard.ZstdDecompressor().decompress
        #: what the last :meth:`load` found the file without (not asked again)
        self._absent: set[tuple[str, str]] = set()
        self._made = made_by(authority) if path is not None else ""
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = _open(path, self._made)
            except sqlite3.Error as exc:  # not a database, a full disk: rendered again, from memory
                self._disk_failed("open", exc)

    def close(self) -> None:
        """Write what is not written yet and close the file."""
        if self._db is not None:
            with self._lock:
                self._write()
                self._db.close()
                self._db = None

    # --- items --------------------------------------------------------------------------

    def fragment(self, event: ArticleEvent, fmt: Format) -> bytes:
        """``event`` as an item inside a feed or message of ``fmt``, made once; b"" when the
        format leaves it out (a kill in RSS); ValueError naming the problem when it cannot be
        rendered (also the second time: the reason is kept)."""
        return self._kept(_source(event), fmt.name, fmt.assembly.fragment)

    def item(self, event: ArticleEvent, fmt: Format) -> bytes:
        """``fmt.item(event)`` (a standalone document), made once."""
        return self._kept(_source(event), _item_kind(fmt), fmt.item)

    def load(self, events: Sequence[ArticleEvent], fmt: Format, *, items: bool = False) -> None:
        """Bring what the file keeps of ``events`` in ``fmt`` (their :meth:`item` when
        ``items``, else their :meth:`fragment`) into memory in one query: a reader of many
        events (a replay's, a batch at a time) asks once for the batch instead of once per
        event (a look-up that misses, 15-40 µs, cost a replay's reading more than keeping the
        render did). What the file does not hold is then rendered without asking it again."""
        if self._db is None:
            return
        kind = _item_kind(fmt) if items else fmt.name
        ids = dict.fromkeys(_source(event)[0] for event in events)
        wanted = [event_id for event_id in ids if event_id and (event_id, kind) not in self._memory]
        with self._lock:
            try:
                found = {event_id: self._decompress(data) for event_id, data in select_in(
                    self._db.execute, "SELECT event_id, data FROM renders WHERE format = ? AND event_id IN (...)",
                    wanted, before=(kind,))}
            except sqlite3.Error as exc:
                self._disk_failed("read", exc)
                return
            self._absent = {(event_id, kind) for event_id in wanted if event_id not in found}
        for event_id, data in found.items():
            self._remember((event_id, kind), data)

    def _kept(self, source: Source, kind: str, render: Callable[[ArticleEvent, str], bytes]) -> bytes:
        event_id, load = source
        found = self._get((event_id, kind)) if event_id else None
        if found is None:
            try:
                found = render(load(), self.authority)
            except ValueError as exc:
                found = _Failed(exc)
            self.made += 1
            if event_id:
                self._put((event_id, kind), found)
        if isinstance(found, _Failed):
            raise ValueError(found)
        return found

    def _get(self, key: tuple[str, str]) -> bytes | _Failed | None:
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return found
            if self._db is None or key in self._absent:
                return None
            try:
                row = self._db.execute("SELECT data FROM renders WHERE event_id = ? AND format = ?", key).fetchone()
            except sqlite3.Error as exc:
                self._disk_failed("read", exc)
                return None
            if row is None:
                return None
            self.hits += 1
            data = self._decompress(row[0])
        self._remember(key, data)
        return data

    def _put(self, key: tuple[str, str], data: bytes | _Failed) -> None:
        self._remember(key, data)
        if self._db is not None and not isinstance(data, _Failed):
            with self._lock:
                self._unwritten.append((*key, self._compress(data)))
                if len(self._unwritten) >= WRITE_BATCH:
                    self._write()

    def flush(self) -> None:
        """Write the rows made so far to the file now (they are written :data:`WRITE_BATCH` at
        a time otherwise): a process that renders a few events at a time (the live pusher) makes
        them visible to the others that share the file (a replay's reading process)."""
        with self._lock:
            self._write()

    def _write(self) -> None:
        """Write the rows made since the last write, in one transaction (under the lock), if the
        file is still one this code made: several processes may share a file (the live pusher
        and replays, the feed server and the feeds consumer), and one of another release that
        opened it since emptied it for its own renders, which this process must not mix with
        its own (it goes on from memory)."""
        rows, self._unwritten = self._unwritten, []
        if self._db is None or not rows:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute("SELECT what FROM made_by").fetchone()
                if found is None or found[0] != self._made:
                    db.execute("ROLLBACK")
                    log.warning("renders_file_taken", reason="made by other code or for another authority since")
                    db.close()
                    self._db = None
                    return
                # multi-row VALUES (newswire.sqlite_rows): row by row, each step waits for the
                # interpreter lock beside the reading process's Kafka and hand-over threads
                executemany(db, "INSERT OR IGNORE INTO renders VALUES (?, ?, ?)", rows)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # a full disk, a file busy for longer than the timeout: in memory only
            self._disk_failed("write", exc)

    def _disk_failed(self, action: str, exc: sqlite3.Error) -> None:
        """A cache that cannot read or write its file goes on without it (logged once a minute)."""
        now = time.monotonic()
        if now - self._disk_warned >= 60:
            self._disk_warned = now
            log.warning("renders_disk_failed", action=action, error=str(exc))

    def _remember(self, key: tuple[str, str], data: bytes | _Failed) -> None:
        with self._lock:
            if key in self._memory:
                return
            self._memory[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and len(self._memory) > 1:
                _, dropped = self._memory.popitem(last=False)
                self._size -= len(dropped)

    # --- assembled ----------------------------------------------------------------------

    def fragments(self, sources: Sequence[Source], fmt: Format) -> list[bytes]:
        """The kept fragments of the events of ``sources``; one that cannot be rendered is left
        out, with its reason logged (``item_left_out``, as :func:`newswire.formats.render_each`)."""
        out = []
        for source in sources:
            try:
                data = self._kept(source, fmt.name, fmt.assembly.fragment)
            except ValueError as exc:
                event = source[1]()
                log.warning("item_left_out", format=fmt.name, article_id=event.get("article_id"),
                            version=event.get("version"), event_id=event.get("event_id"), reason=str(exc))
                continue
            if data:
                out.append(data)
        return out

    def feed(self, events: Sequence[ArticleEvent], fmt: Format, channel: Channel) -> bytes:
        """``fmt.feed(events, channel)``, byte for byte, assembled from the kept fragments."""
        return self.assemble([_source(event) for event in events], fmt, channel)

    def assemble(self, sources: Sequence[Source], fmt: Format, channel: Channel) -> bytes:
        """The feed or message of the events of ``sources`` (see :func:`feed`).

        ValueError when the format needs items (a newsMessage holds at least one) and none of
        them can be rendered, naming the first one's problem."""
        parts = self.fragments(sources, fmt)
        if not parts and fmt.assembly.needs_items:
            if sources:
                self._kept(sources[0], fmt.name, fmt.assembly.fragment)  # raises its own error naming the field
            raise ValueError(f"itemSet: none of the {len(sources)} items could be rendered")
        if fmt.assembly.complete is not None:
            channel = fmt.assembly.complete(channel, parts)
        head, tail = fmt.assembly.envelope(channel, self.authority)
        body = fmt.assembly.separator.join(parts)  # the items copied twice, not three times (head + … + tail)
        return b"".join((head, body, tail))


def _open(path: Path, made: str) -> sqlite3.Connection:
    """The cache file at ``path``, emptied first when it was made by other code, for another
    authority or in another layout (module doc)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")  # a cache: a lost row is rendered again
    try:
        db.execute("BEGIN IMMEDIATE")  # one process at a time looks and empties
        layout = db.execute("PRAGMA user_version").fetchone()[0]
        found = db.execute("SELECT what FROM made_by").fetchone() if layout == LAYOUT else None
        if found is None or found[0] != made:
            if layout or found is not None:
                log.info("renders_file_emptied", path=str(path), layout=layout, made_by_other=found is not None)
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                db.execute(f'DROP TABLE "{table}"')
            for statement in _SCHEMA.split(";")[:-1]:
                db.execute(statement)
            db.execute("INSERT INTO made_by VALUES (?)", (made,))
            db.execute(f"PRAGMA user_version = {LAYOUT}")
        db.execute("COMMIT")
    except BaseException:
        db.close()  # what the transaction did is rolled back
        raise
    return db  # in autocommit mode: a write opens its own transaction (Renders._write)


@functools.cache
def made_by(authority: str) -> str:
    """What makes the kept bytes of ids minted by ``authority``: the authority and a SHA-256 of
    the renderers' source (:data:`_RENDERERS`, every module of a package) and their data files."""
    digest = hashlib.sha256(authority.encode() + b"\0")
    for name in _RENDERERS:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin)
        if spec.submodule_search_locations:  # a package: every module of it
            files = sorted(origin.parent.glob("*.py"))
        else:  # a module, and its data beside it (mediatopics.json)
            files = [origin, *origin.parent.glob(f"{origin.stem}.json")]
        for file in files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


@functools.cache
def shared(authority: str) -> Renders:
    """This process's kept renders of ids minted by ``authority`` (memory only)."""
    return Renders(authority)


#: an event id and how to have its event (it is only read when its bytes are not kept)
Source = tuple[str, Callable[[], ArticleEvent]]


def _item_kind(fmt: Format) -> str:
    """Under what a standalone item of ``fmt`` is kept (its fragment is kept under ``fmt.name``)."""
    return f"{fmt.name}:item"


def _source(event: ArticleEvent) -> Source:
    return str(event.get("event_id") or ""), lambda: event
