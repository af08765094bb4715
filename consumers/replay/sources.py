"""Where replayed events come from: Kafka (a temporary reader without a group, so no
consumer's offsets move) or the archive (events older than Kafka still holds).

Both yield the same :class:`Item` for the same event: its partition and offset in the
articles topic, record timestamp, the event (read as the newest schema; marked clean when its
cleaning seal verified, :mod:`newswire.seal`: when read from Kafka, or, from the archive, when
it was archived) and its single-object payload as written, so every target behaves the same
whichever the source.

Both also give the **endings** (:meth:`Source.endings`): the kill or withdrawal of every
article ended anywhere in the log, whatever the window, so a target decides per article from
its state now, not from the window's (a window that ends before a kill must not send the
killed story to anyone new). Kafka's come from a scan of the whole topic (record headers;
only the endings are decoded); the archive's from its index, together with Kafka's (the
archive may lag behind the topic, and a kill is in force from the moment it is published).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from kafka import TopicPartition

from newswire import bus, codec, logs, seal
from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.consumers.archive.reader import ArchiveReader, Problem
from newswire.events import ENDINGS

from .window import Range, Window, kafka_ranges

log = logs.get(__name__)


@dataclass(frozen=True)
class Item:
    partition: int
    offset: int
    timestamp_ms: int
    #: marked clean when its cleaning seal verified (:mod:`newswire.seal`); only its routing
    #: fields (:func:`newswire.events.routing`) when it comes rendered (``rendered``)
    event: ArticleEvent
    #: its single-object payload as written
    payload: bytes
    #: its body rendered ahead in a partner's format (:mod:`.readahead`): format → the body's
    #: parts (:meth:`~newswire.consumers.webhooks.payloads.Renderer.parts`) or why it cannot be
    rendered: dict[str, tuple[bytes, bytes | None] | str] | None = None


class Source(Protocol):
    name: str

    def counts(self, resume: dict[int, int]) -> Counter:
        """Events per partition still to replay (after the ``resume`` positions)."""

    def items(self, resume: dict[int, int]) -> Iterator[Item]:
        """The window's events, each partition's in offset order, from the ``resume`` positions on."""

    def endings(self) -> dict[str, Item]:
        """Article id → its kill or withdrawal, over the whole log (not only the window)."""

    def close(self) -> None: ...


def _latest(endings: dict[str, Item], item: Item) -> None:
    """Keep ``item`` as its article's ending unless a later version ended it already."""
    known = endings.get(item.event["article_id"])
    if known is None or item.event["version"] > known.event["version"]:
        endings[item.event["article_id"]] = item


class KafkaSource:
    """The window's records read with ``assign()`` (no group); ranges fixed at start."""

    name = "kafka"

    def __init__(self, settings: Settings, window: Window):
        self.settings = settings
        self.topic = settings.topics.articles
        self.window = window
        self.kafka = bus.consumer(settings, None, client_id="newswire-replay", max_poll_records=1000)
        self.ranges = kafka_ranges(self.kafka, self.topic, window)
        self.undecodable = 0

    def _starts(self, resume: dict[int, int]) -> list[Range]:
        return [Range(r.partition, max(r.start, resume.get(r.partition, r.start)), r.stop) for r in self.ranges]

    def counts(self, resume: dict[int, int]) -> Counter:
        return Counter({r.partition: r.count for r in self._starts(resume)})

    def _records(self, rng: Range):
        """The records of one partition's offsets ``[start, stop)``."""
        tp = TopicPartition(self.topic, rng.partition)
        self.kafka.assign([tp])
        self.kafka.seek(tp, rng.start)
        while True:
            records = self.kafka.poll(timeout_ms=1000).get(tp, [])
            if not records and self.kafka.position(tp) >= rng.stop:
                return  # the rest of the range holds no records (e.g. transaction markers)
            for record in records:
                if record.offset >= rng.stop:
                    return
                yield record
                if record.offset + 1 >= rng.stop:
                    return

    def _item(self, record) -> Item | None:
        try:
            event = codec.decode(record.value)
        except codec.DecodeError as exc:
            self.undecodable += 1
            log.warning("replay_undecodable", topic=self.topic, partition=record.partition,
                        offset=record.offset, reason=str(exc))
            return None
        seal.mark(event, record.value, record.headers, self.settings.clean_key)
        return Item(record.partition, record.offset, record.timestamp, event, record.value)

    def items(self, resume: dict[int, int]) -> Iterator[Item]:
        for rng in self._starts(resume):
            if rng.count == 0:
                continue
            for record in self._records(rng):
                if self.window.holds(record.timestamp) and (item := self._item(record)) is not None:
                    yield item

    def endings(self) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for rng in kafka_ranges(self.kafka, self.topic, Window()):
            for record in self._records(rng) if rng.count else ():
                event_type = bus.header(record, "event_type")
                if event_type is not None and event_type not in ENDINGS:
                    continue  # the header says what it is: no need to decode it
                item = self._item(record)
                if item is not None and item.event["event_type"] in ENDINGS:
                    _latest(found, item)
        return found

    def close(self) -> None:
        self.kafka.close()


class ArchiveSource:
    """The window's events from the archive index and segments, in the order they were archived
    (each partition's in offset order)."""

    name = "archive"

    def __init__(self, settings: Settings, window: Window, root: Path):
        self.settings = settings
        self.topic = settings.topics.articles
        self.window = window
        self.reader = ArchiveReader(root)
        #: read in archive order (each block read once, in the order the files hold them) when
        #: that keeps every partition in offset order, as it does unless the archive's group was
        #: reset; by position otherwise (each block then read once per partition it holds)
        self.by_position = not self.reader.index.in_offset_order(self.topic)
        if not self.by_position:
            self.reader.block_cache = 2  # read in order: a block is done with when the next begins
        self.problems: list[Problem] = []

    def _entries(self, resume: dict[int, int]):
        for entry in self.reader.entries(since_ms=self.window.since_ms, until_ms=self.window.until_ms,
                                         topic=self.topic, by_position=self.by_position):
            if entry.offset >= resume.get(entry.partition, 0):
                yield entry

    def counts(self, resume: dict[int, int]) -> Counter:
        return Counter(entry.partition for entry in self._entries(resume))

    def _item(self, entry, event: ArticleEvent) -> Item:
        if entry.cleaned:  # its seal verified when it was archived
            event = seal.mark_verified(dict(event))  # a copy: the reader keeps its blocks' events
        return Item(entry.partition, entry.offset, entry.published_at, event, self.reader.payload(entry))

    def items(self, resume: dict[int, int]) -> Iterator[Item]:
        for entry, event in self.reader.events(self._entries(resume), self.problems):
            yield self._item(entry, event)

    def endings(self) -> dict[str, Item]:
        ended = (e for e in self.reader.entries(topic=self.topic) if e.event_type in ENDINGS)
        found: dict[str, Item] = {}
        for entry, event in self.reader.events(ended, self.problems):
            _latest(found, self._item(entry, event))
        kafka = KafkaSource(self.settings, Window())
        try:
            for item in kafka.endings().values():
                _latest(found, item)
        finally:
            kafka.close()
        return found

    def close(self) -> None:
        for problem in self.problems:
            log.error("replay_archive_damaged", problem=str(problem))
        self.reader.close()
