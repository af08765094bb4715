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
"""

from __future__ import annotations

import functools
import heapq
import re
import sys
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable, Iterable

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


class FeedView:
    """See module doc. ``load``: ``(article_id, version)`` → a stored payload (the owner's
    store); with it, a payload is kept in memory only until its change is durable."""

    def __init__(self, *, load: Callable[[str, int], bytes] | None = None) -> None:
        self._load = load
        #: article ids whose entry keeps its payload until it is durable
        self._keeping: list[str] = []
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._feeds: dict[str, SortedList] = {}
        self._feed_changed: dict[str, datetime] = {}
        self._by_seq: SortedDict = SortedDict()  # seq -> article id, latest change only
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
            current = self._entries.get(event["article_id"])
            if current is not None and (event["version"] < current.version
                                        or (event["version"] == current.version and not again)):
                self.stale += 1
                log.info("feed_view_stale_event", article_id=event["article_id"], version=event["version"],
                         known_version=current.version, event_id=event.get("event_id"))
                return None
            self.head += 1
            held = events.is_embargoed(event, now)
            entry = self._install(Entry.of(event, seq=self.head, changed_at=now, held=held, payload=payload))
            self._journal.append(Change("version", entry))
            if self._load is not None:
                self._keeping.append(entry.article_id)
            return entry

    def release(self, now: datetime) -> list[Entry]:
        """Lift every embargo that ended by ``now``: each lifted item takes a new cursor value."""
        lifted = []
        with self._lock:
            while self._held and self._held[0][0] <= now:
                until, seq, article_id = heapq.heappop(self._held)
                entry = self._entries.get(article_id)
                if entry is None or entry.seq != seq or not entry.held:
                    continue  # superseded by a newer version meanwhile
                self.head += 1
                entry = self._install(replace(entry, seq=self.head, changed_at=until, held=False))
                self._journal.append(Change("lifted", entry))
                lifted.append(entry)
                log.info("embargo_lifted", article_id=article_id, version=entry.version, seq=entry.seq)
        return lifted

    def _install(self, entry: Entry) -> Entry:
        changed_at = entry.changed_at
        current = self._entries.get(entry.article_id)
        touched = set(entry.feeds)
        if current is not None:
            del self._by_seq[current.seq]
            for feed in current.feeds:
                self._feeds[feed].remove(current.key)
            touched.update(current.feeds)
        for feed in entry.feeds:
            self._feeds.setdefault(feed, SortedList()).add(entry.key)
        for feed in touched:
            self._feed_changed[feed] = max(self._feed_changed.get(feed, changed_at), changed_at)
        self._by_seq[entry.seq] = entry.article_id
        if entry.held:
            heapq.heappush(self._held, (entry.embargo_until, entry.seq, entry.article_id))
        self._entries[entry.article_id] = entry
        return entry

    def take_journal(self) -> list[Change]:
        """The changes since the last call, oldest first, for the owner to persist."""
        with self._lock:
            journal, self._journal = self._journal, []
            return journal

    def mark_durable(self, seq: int) -> None:
        """Changes up to ``seq`` are persisted: the cursor may hand them out (listeners are told)."""
        with self._lock:
            before, self.durable = self.durable, max(self.durable, min(seq, self.head))
            durable = self.durable
            keeping, self._keeping = self._keeping, []
            for article_id in keeping:
                entry = self._entries[article_id]
                if entry.kept is None:
                    continue
                if entry.seq > self.durable:
                    self._keeping.append(article_id)
                else:  # in the store now: read from there when needed
                    self._entries[article_id] = replace(entry, kept=None, load=self._load)
        if durable > before:
            for listener in self._on_durable:
                listener(durable)

    def on_durable(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(cursor)`` whenever the durable cursor moves (in the thread that moves it)."""
        self._on_durable.append(listener)

    def restore(self, entries: Iterable[Entry], *, head: int, stale: int,
                feed_changed: dict[str, datetime]) -> None:
        """Load persisted entries (any order) into an empty view.

        Builds the indexes in bulk (one sort per feed), which is what makes a restart fast.
        """
        with self._lock:
            if self._entries:
                raise RuntimeError("restore needs an empty view")
            keys: dict[str, list[tuple[datetime, str]]] = {}
            by_seq = []
            for entry in entries:
                self._entries[entry.article_id] = entry
                by_seq.append((entry.seq, entry.article_id))
                key, changed_at = entry.key, entry.changed_at
                for feed in entry.feeds:
                    keys.setdefault(feed, []).append(key)
                    self._feed_changed[feed] = max(self._feed_changed.get(feed, changed_at), changed_at)
                if entry.held:
                    self._held.append((entry.embargo_until, entry.seq, entry.article_id))
            self._feeds = {feed: SortedList(found) for feed, found in keys.items()}
            self._by_seq = SortedDict(by_seq)
            heapq.heapify(self._held)
            self._feed_changed.update(feed_changed)
            self.head = self.durable = head
            self.stale = stale

    # --- queries ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, article_id: str) -> Entry | None:
        return self._entries.get(article_id)

    def feeds(self) -> dict[str, int]:
        """Every feed the view knows, with how many articles (live or not) it indexes."""
        with self._lock:
            return {name: len(keys) for name, keys in sorted(self._feeds.items()) if keys}

    def feed_changed(self, feed: str) -> datetime | None:
        """When an article last entered, changed in or left ``feed`` (embargo endings aside)."""
        return self._feed_changed.get(feed)

    def items(self, feed: str, now: datetime, *, limit: int, audience: Audience = PUBLIC,
              include_dead: bool = True) -> list[Entry]:
        """The newest ``limit`` items of ``feed`` that ``audience`` may see at ``now``, newest first."""
        out: list[Entry] = []
        with self._lock:
            for _, article_id in reversed(self._feeds.get(feed, ())):
                entry = self._entries[article_id]
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
            for seq in self._by_seq.irange(cursor + 1, self.durable):
                entry = self._entries[self._by_seq[seq]]
                if (entry.held and not audience.embargoed) or not audience.may_see(entry):
                    continue  # a held item comes back with a new cursor value when it is lifted
                out.append(entry)
                if len(out) == limit:
                    next_cursor = seq
                    break
            return out, next_cursor

    def snapshot(self) -> list[Entry]:
        """Every entry, in cursor order (for persistence and tests)."""
        with self._lock:
            return [self._entries[a] for a in self._by_seq.values()]

