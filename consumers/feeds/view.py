"""The materialised view the feeds need: pure, in memory, thread-safe.

What it keeps, per article, is the latest version's event (an event whose version is not
newer than the known one is ignored and counted, so a feed never shows an older version
after a newer one). What it answers, always for a given instant ``now``:

* the newest items of a feed (``all``, ``category-<name>``, ``lang-<tag>``), newest first.
  An item's place is its *visible time*: the later of its version's ``occurred_at`` and its
  ``embargo_until``, so an embargoed story enters public feeds at the top when its time
  comes, without any new event. Kills and withdrawals stay in the view (wire formats carry
  them as ``stat:canceled`` / ``stat:withheld``); RSS and Atom ask without them.
* the wire-ingest cursor: every change (an applied version, or an embargo lifting) takes
  the next value of a monotonic sequence; :meth:`FeedView.changes_since` answers the items
  whose *latest* change is after a cursor, in sequence order. A held (embargoed) item is
  hidden from the public until :meth:`FeedView.release` lifts it, which gives it a new,
  higher sequence value: a poller whose cursor passed the item while it was held still
  receives it once it is lifted. Only *durable* changes (persisted by the owner, see
  :meth:`FeedView.mark_durable`) are answered, so a crash can never renumber a sequence
  value a poller has already seen.

Memory is bounded by the window, not the history. A view restored from its owner's store
(:meth:`FeedView.restore`, with the store as its :class:`History`) keeps in memory only what
answers the live requests: the newest :attr:`FeedView.window` items of each feed that was asked
for lately (at most :attr:`FeedView.feeds_kept` feeds), the newest :attr:`FeedView.recent`
changes (what long polls, event streams and WebSub read), the held embargoes, and every change
not durable yet. Whatever else a feed page or a cursor reaches is read from the store, merged
with memory: an article in memory is always answered from memory (it may be newer than its
stored row), one that is not is answered by its stored row, which is then its latest state
(a change leaves memory only once it is durable). A view without a store (``FeedView()``, as
in the tests) keeps everything.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import re
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable, Iterator, Protocol

from sortedcontainers import SortedDict, SortedList

from newswire import codec, events, logs
from newswire.codec import ArticleEvent
from newswire.events import visible_at

log = logs.get(__name__)

ALL = "all"
FEED_NAME = re.compile(r"all|category-[a-z0-9]+(?:-[a-z0-9]+)*|lang-[a-z0-9]+(?:-[a-z0-9]+)*")


_WORD = re.compile(r"[0-9a-z]+")


@functools.lru_cache(maxsize=4096)
def slug(text: str) -> str:
    """``Middle East`` → ``middle-east``: the form of a category or language in a feed name."""
    return "-".join(_WORD.findall(text.lower()))


def feeds_of(event: ArticleEvent) -> tuple[str, ...]:
    """The feeds an article version belongs to: ``all``, its language and its categories."""
    names = [ALL, f"lang-{slug(event['language'])}"]
    names += [f"category-{s}" for s in map(slug, event.get("categories") or ()) if s]
    return tuple(dict.fromkeys(map(sys.intern, names)))  # one string per feed name, however many articles


def check(event: ArticleEvent) -> None:
    """Raise ``ValueError`` naming the field when the view cannot use ``event`` (the event
    contract, :func:`newswire.events.check`, and a language that makes a feed name)."""
    events.check(event)
    if not slug(event.get("language") or ""):
        raise ValueError(f"language: {event.get('language')!r} is not a language tag")


@dataclass(frozen=True)
class Audience:
    """Who asks: the public, or a partner with the feeds it is entitled to and embargo rights."""

    name: str = "public"
    #: feeds this audience may read; ``None``: every feed
    feeds: frozenset[str] | None = None
    #: sees embargoed items (marked embargoed) before their time
    embargoed: bool = False

    def may_read(self, feed: str) -> bool:
        return self.feeds is None or feed in self.feeds

    def may_see(self, entry: "Entry") -> bool:
        return self.feeds is None or not self.feeds.isdisjoint(entry.feeds)


PUBLIC = Audience()


@dataclass(frozen=True, slots=True)
class Entry:
    """The view's state of one article; replaced, never mutated, so readers hold snapshots.

    The version's event is its Avro payload, decoded by :attr:`event` when a renderer needs it
    (a renderer that has the entry's kept bytes does not: :mod:`newswire.formats.kept`). A view
    with a store keeps the payload in memory only until the change is durable; after that (and
    for every entry a restart loads) :attr:`payload` reads it from the store. The fields the
    indexes use are kept decoded.
    """

    event_id: str
    article_id: str
    version: int
    event_type: str
    #: when the version becomes public (see :func:`visible_at`)
    visible: datetime
    embargo_until: datetime | None
    feeds: tuple[str, ...]
    #: cursor value of the article's latest change
    seq: int
    #: when the view last changed the article (apply time, or embargo end for a lifting)
    changed_at: datetime
    #: embargoed and not yet lifted by :meth:`FeedView.release`
    held: bool
    #: the payload while it is kept in memory, else None (the event id stands for it in comparisons)
    kept: bytes | None = field(default=None, compare=False, repr=False)
    #: ``(article_id, version)`` → the payload of a stored version (the view's store)
    load: Callable[[str, int], bytes] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, event: ArticleEvent, *, seq: int, changed_at: datetime, held: bool,
           payload: bytes | None = None) -> "Entry":
        return cls(str(event.get("event_id") or ""), event["article_id"], event["version"], event["event_type"],
                   visible_at(event), event.get("embargo_until"), feeds_of(event), seq, changed_at, held,
                   kept=payload or codec.encode(event))

    @property
    def payload(self) -> bytes:
        if self.kept is not None:
            return self.kept
        if self.load is None:
            raise RuntimeError(f"the payload of article {self.article_id} v{self.version} is neither kept nor stored")
        return self.load(self.article_id, self.version)

    @property
    def event(self) -> ArticleEvent:
        return codec.decode(self.payload)

    @property
    def dead(self) -> bool:
        return self.event_type in events.ENDINGS

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.visible, self.article_id)

    def embargoed(self, now: datetime) -> bool:
        return events.embargoed(self.embargo_until, now)


@dataclass(frozen=True, slots=True)
class Change:
    """A journal record for the owner to persist: an applied version or an embargo lifting."""

    kind: str  # "version" | "lifted"
    entry: Entry


#: a feed position: (visible time, article id), newest last
Key = tuple[datetime, str]


class History(Protocol):
    """The durable state of a view, as its owner's store answers it (:class:`~.store.ViewStore`).

    Every answer is of durable changes only, each article in its latest stored state."""

    def entry(self, article_id: str) -> Entry | None:
        """The stored state of an article, or None."""

    def feed_entries(self, feed: str, below: Key | None, limit: int) -> list[Entry]:
        """At most ``limit`` entries of ``feed`` whose key is below ``below`` (any when None), newest first."""

    def changed_entries(self, after: int, upto: int, limit: int) -> list[Entry]:
        """At most ``limit`` entries whose cursor value is in ``(after, upto]``, in cursor order."""

    def newest_changes(self, limit: int) -> list[Entry]:
        """The ``limit`` entries of the highest cursor values, highest first."""

    def held_entries(self) -> list[Entry]:
        """Every held (embargoed, not yet lifted) entry."""

    def payload(self, article_id: str, version: int) -> bytes:
        """The stored payload of a version."""


#: the most rows a walk reads from the store at a time (it starts with what its page needs)
_BATCH = 1024
#: a feed whose window is not in memory (its floor: nothing above it is known to be there)
_TOP = object()


class FeedView:
    """See module doc. ``window``: newest items kept per feed; ``recent``: newest changes kept;
    ``feeds_kept``: feeds whose window is kept (the least recently asked one goes first)."""

    def __init__(self, *, window: int = 1000, recent: int = 2000, feeds_kept: int = 64) -> None:
        self.window, self.recent, self.feeds_kept = window, recent, feeds_kept
        #: the durable state not in memory (set by :meth:`restore`); None: everything is in memory
        self._history: History | None = None
        #: article ids whose entry keeps its payload until it is durable
        self._keeping: list[str] = []
        self._lock = threading.RLock()
        #: the articles in memory (with a history, a part of them), with their keys per feed and by cursor value
        self._entries: dict[str, Entry] = {}
        self._feeds: dict[str, SortedList] = {}
        self._by_seq: SortedDict = SortedDict()  # seq -> article id, latest change only
        #: feed -> its floor: every item of the feed at or above it is in memory (None: every item);
        #: a feed without one has no window in memory. In the order the feeds were last asked for.
        self._floors: OrderedDict[str, Key | None] = OrderedDict()
        #: every change with a higher cursor value is in memory (-1: every change)
        self._seq_floor = -1
        #: articles (live or not) per feed, and when each feed last changed
        self._counts: dict[str, int] = {}
        self._feed_changed: dict[str, datetime] = {}
        self._held: list[tuple[datetime, int, str]] = []  # heap of (embargo end, seq, article id)
        self._journal: list[Change] = []
        #: last cursor value handed to a change; last one persisted by the owner
        self.head = 0
        self.durable = 0
        #: events ignored because their version was not newer than the known one
        self.stale = 0
        #: called (in the thread that made them durable) with the new durable cursor
        self._on_durable: list[Callable[[int], None]] = []

    # --- changes ------------------------------------------------------------------------

    def apply(self, event: ArticleEvent, now: datetime, *, payload: bytes | None = None,
              again: bool = False) -> Entry | None:
        """Apply one event at ``now``; return the new entry, or ``None`` when it is stale.

        ``payload``: the event's Avro single-object encoding when the caller has it (read from
        Kafka), which saves encoding it again. ``again``: the event is re-read on purpose (its
        consumer group was reset): the version the view already has is applied again, with a
        new cursor value, so change pollers get it again; older versions are still stale.
        """
        check(event)
        with self._lock:
            current = self._current(event["article_id"])
            if current is not None and (event["version"] < current.version
                                        or (event["version"] == current.version and not again)):
                self.stale += 1
                log.info("feed_view_stale_event", article_id=event["article_id"], version=event["version"],
                         known_version=current.version, event_id=event.get("event_id"))
                return None
            self.head += 1
            held = events.is_embargoed(event, now)
            entry = self._install(Entry.of(event, seq=self.head, changed_at=now, held=held, payload=payload), current)
            self._journal.append(Change("version", entry))
            if self._history is not None:
                self._keeping.append(entry.article_id)
            return entry

    def release(self, now: datetime) -> list[Entry]:
        """Lift every embargo that ended by ``now``: each lifted item takes a new cursor value."""
        lifted = []
        with self._lock:
            while self._held and self._held[0][0] <= now:
                until, seq, article_id = heapq.heappop(self._held)
                entry = self._entries.get(article_id)  # a held entry stays in memory until it is lifted
                if entry is None or entry.seq != seq or not entry.held:
                    continue  # superseded by a newer version meanwhile
                self.head += 1
                entry = self._install(replace(entry, seq=self.head, changed_at=until, held=False), entry)
                self._journal.append(Change("lifted", entry))
                lifted.append(entry)
                log.info("embargo_lifted", article_id=article_id, version=entry.version, seq=entry.seq)
        return lifted

    def _current(self, article_id: str) -> Entry | None:
        """The article's latest state: from memory, else from the history."""
        entry = self._entries.get(article_id)
        if entry is None and self._history is not None:
            entry = self._history.entry(article_id)
        return entry

    def _install(self, entry: Entry, current: Entry | None) -> Entry:
        """Make ``entry`` the article's state in place of ``current`` (in memory or only in the history)."""
        changed_at = entry.changed_at
        touched = set(entry.feeds)
        if current is not None:
            if current.article_id in self._entries:
                self._forget(current)
            for feed in current.feeds:
                self._counts[feed] -= 1
            touched.update(current.feeds)
        for feed in entry.feeds:
            self._counts[feed] = self._counts.get(feed, 0) + 1
        for feed in touched:
            self._feed_changed[feed] = max(self._feed_changed.get(feed, changed_at), changed_at)
        self._remember(entry)
        if entry.held:
            heapq.heappush(self._held, (entry.embargo_until, entry.seq, entry.article_id))
        return entry

    def _remember(self, entry: Entry) -> None:
        """Put ``entry`` in memory (its indexes), replacing nothing."""
        for feed in entry.feeds:
            self._feeds.setdefault(feed, SortedList()).add(entry.key)
        self._by_seq[entry.seq] = entry.article_id
        self._entries[entry.article_id] = entry

    def _forget(self, entry: Entry) -> None:
        """Take ``entry`` (the one in memory) out of memory and its indexes."""
        del self._entries[entry.article_id]
        del self._by_seq[entry.seq]
        for feed in entry.feeds:
            self._feeds[feed].remove(entry.key)

    def take_journal(self) -> list[Change]:
        """The changes since the last call, oldest first, for the owner to persist."""
        with self._lock:
            journal, self._journal = self._journal, []
            return journal

    def mark_durable(self, seq: int) -> None:
        """Changes up to ``seq`` are persisted: the cursor may hand them out (listeners are told),
        and what only they kept in memory may leave it."""
        with self._lock:
            before, self.durable = self.durable, max(self.durable, min(seq, self.head))
            durable = self.durable
            keeping, self._keeping = self._keeping, []
            stored = []
            for article_id in keeping:
                entry = self._entries[article_id]
                if entry.kept is None:
                    continue
                if entry.seq > self.durable:
                    self._keeping.append(article_id)
                else:  # in the store now: read from there when needed
                    self._entries[article_id] = replace(entry, kept=None, load=self._history.payload)
                    stored.append(article_id)
            if self._history is not None:
                self._trim(stored)
        if durable > before:
            for listener in self._on_durable:
                listener(durable)

    def on_durable(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(cursor)`` whenever the durable cursor moves (in the thread that moves it)."""
        self._on_durable.append(listener)

    # --- memory and history ---------------------------------------------------------------

    def restore(self, history: History, *, head: int, stale: int,
                feeds: dict[str, tuple[datetime, int]]) -> None:
        """Take ``history`` (the owner's store) as this empty view's durable state: load the
        newest changes and the held embargoes, nothing else (feed windows load when asked for).
        ``feeds``: each feed's last change and article count."""
        with self._lock:
            if self._entries or self._counts:
                raise RuntimeError("restore needs an empty view")
            self._history = history
            newest = history.newest_changes(self.recent)
            self._seq_floor = newest[-1].seq - 1 if len(newest) == self.recent else -1
            for entry in itertools.chain(newest, history.held_entries()):
                if entry.article_id in self._entries:
                    continue  # a held one among the newest
                self._remember(entry)
                if entry.held:
                    self._held.append((entry.embargo_until, entry.seq, entry.article_id))
            heapq.heapify(self._held)
            self._feed_changed = {name: changed for name, (changed, _) in feeds.items()}
            self._counts = {name: count for name, (_, count) in feeds.items()}
            self.head = self.durable = head
            self.stale = stale

    def _pinned(self, entry: Entry) -> bool:
        """Whether ``entry`` must stay in memory: not durable, held, a recent change, or in a kept window."""
        if entry.seq > self.durable or entry.held or entry.seq > self._seq_floor:
            return True
        for feed in entry.feeds:
            floor = self._floors.get(feed, _TOP)
            if floor is None or (floor is not _TOP and entry.key >= floor):
                return True
        return False

    def _trim(self, candidates: list[str]) -> None:
        """Raise the floors of what has grown past twice its window, and let go of the entries
        (among ``candidates`` and those below a raised floor) that nothing keeps in memory."""
        seqs = self._by_seq
        start = seqs.bisect_right(self._seq_floor)
        if len(seqs) - start > 2 * self.recent:
            floor = min(seqs.keys()[-self.recent - 1], self.durable)
            if floor > self._seq_floor:
                candidates += [seqs[s] for s in seqs.irange(self._seq_floor + 1, floor)]
                self._seq_floor = floor
        for feed, floor in list(self._floors.items()):
            keys = self._feeds.get(feed)
            start = 0 if floor is None or keys is None else keys.bisect_left(floor)
            if keys is not None and len(keys) - start > 2 * self.window:
                candidates += [article_id for _, article_id in keys.islice(start, len(keys) - self.window)]
                self._floors[feed] = keys[-self.window]
        for article_id in candidates:
            entry = self._entries.get(article_id)
            if entry is not None and not self._pinned(entry):
                self._forget(entry)

    def _keep_window(self, feed: str) -> None:
        """Have ``feed``'s newest items in memory (read once, then kept up to date); unload the
        least recently asked feed's window past :attr:`feeds_kept`."""
        if feed in self._floors:
            self._floors.move_to_end(feed)
            return
        found = self._history.feed_entries(feed, None, self.window)
        for entry in found:
            if entry.article_id not in self._entries:  # one in memory is newer or the same
                self._remember(entry)
        self._floors[feed] = found[-1].key if len(found) == self.window else None
        if len(self._floors) > self.feeds_kept:
            unloaded, _ = self._floors.popitem(last=False)
            self._trim([article_id for _, article_id in self._feeds.get(unloaded, ())])

    def _feed_walk(self, feed: str, batch: int) -> Iterator[Entry]:
        """Every entry of ``feed``, newest first: memory down to the floor, then memory merged
        with the history (an article in memory is never taken from the history)."""
        newest = (self._entries[article_id] for _, article_id in reversed(self._feeds.get(feed, ())))
        floor = None if self._history is None else self._floors.get(feed, _TOP)
        if floor is None:
            yield from newest
            return
        below = None
        for entry in newest:
            if floor is _TOP or entry.key < floor:
                below = entry
                break
            yield entry
        stored = self._stored(lambda after, limit: self._history.feed_entries(feed, after, limit),
                              None if floor is _TOP else floor, lambda entry: entry.key, batch)
        rest = newest if below is None else itertools.chain([below], newest)
        yield from heapq.merge(rest, stored, key=lambda entry: entry.key, reverse=True)

    def _change_walk(self, after: int, upto: int, batch: int = _BATCH) -> Iterator[Entry]:
        """Every entry whose latest change is in ``(after, upto]``, in cursor order (memory merged
        with the history below the recent changes kept)."""
        in_memory = (self._entries[self._by_seq[seq]] for seq in self._by_seq.irange(after + 1, upto))
        if self._history is None or after >= self._seq_floor:
            yield from in_memory
            return
        top = min(self._seq_floor, upto)
        stored = self._stored(lambda start, limit: self._history.changed_entries(start, top, limit),
                              after, lambda entry: entry.seq, batch)
        yield from heapq.merge(in_memory, stored, key=lambda entry: entry.seq)

    def _stored(self, read: Callable, start, position: Callable[[Entry], object], batch: int) -> Iterator[Entry]:
        """The entries ``read(start, limit)`` finds, ``batch`` rows first, then twice as many each
        time (up to :data:`_BATCH`), leaving out those in memory."""
        while True:
            found = read(start, batch)
            yield from (entry for entry in found if entry.article_id not in self._entries)
            if len(found) < batch:
                return
            start, batch = position(found[-1]), min(2 * batch, _BATCH)

    # --- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._counts.get(ALL, 0)  # every article is in the feed "all"

    def get(self, article_id: str) -> Entry | None:
        with self._lock:
            return self._current(article_id)

    def in_memory(self) -> int:
        """How many articles the view holds in memory (all of them without a history)."""
        return len(self._entries)

    def feeds(self) -> dict[str, int]:
        """Every feed the view knows, with how many articles (live or not) it indexes."""
        with self._lock:
            return {name: count for name, count in sorted(self._counts.items()) if count}

    def feed_stats(self) -> dict[str, tuple[datetime, int]]:
        """Every feed ever known (empty ones too), with its last change and article count (for the store)."""
        with self._lock:
            return {name: (self._feed_changed[name], count) for name, count in self._counts.items()}

    def feed_changed(self, feed: str) -> datetime | None:
        """When an article last entered, changed in or left ``feed`` (embargo endings aside)."""
        return self._feed_changed.get(feed)

    def items(self, feed: str, now: datetime, *, limit: int, audience: Audience = PUBLIC,
              include_dead: bool = True) -> list[Entry]:
        """The newest ``limit`` items of ``feed`` that ``audience`` may see at ``now``, newest first."""
        out: list[Entry] = []
        with self._lock:
            if self._history is not None and self._counts.get(feed):
                self._keep_window(feed)
            for entry in self._feed_walk(feed, limit):
                if (entry.dead and not include_dead) or (entry.embargoed(now) and not audience.embargoed):
                    continue
                out.append(entry)
                if len(out) == limit:
                    break
        return out

    def changes_since(self, cursor: int, *, limit: int, audience: Audience = PUBLIC) -> tuple[list[Entry], int]:
        """Items whose latest durable change came after ``cursor``, in change order, and the next cursor.

        Raises ``ValueError`` for a cursor the view never handed out (negative or ahead of it).
        """
        if limit < 1:
            raise ValueError(f"limit: {limit} is not a positive integer")
        with self._lock:
            if not 0 <= cursor <= self.durable:
                raise ValueError(f"since: cursor {cursor} is not between 0 and the current cursor {self.durable}")
            out: list[Entry] = []
            next_cursor = self.durable
            for entry in self._change_walk(cursor, self.durable, limit):
                if (entry.held and not audience.embargoed) or not audience.may_see(entry):
                    continue  # a held item comes back with a new cursor value when it is lifted
                out.append(entry)
                if len(out) == limit:
                    next_cursor = entry.seq
                    break
            return out, next_cursor

    def snapshot(self) -> list[Entry]:
        """Every entry, in cursor order (for tests; with a history, read from it too)."""
        with self._lock:
            return list(self._change_walk(-1, sys.maxsize))
