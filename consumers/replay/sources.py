"""Where replayed events come from: Kafka (a temporary reader without a group, so no
consumer's offsets move) or the archive (events older than Kafka still holds).

Both yield the same :class:`Item` for the same event: its partition and offset in the
articles topic, record timestamp, the event (read as the newest schema) and its
single-object payload as written, so every target behaves the same whichever the source.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from kafka import TopicPartition

from newswire import bus, codec, logs
from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.consumers.archive.reader import ArchiveReader, Problem

from .window import Range, Window, kafka_ranges

log = logs.get(__name__)


@dataclass(frozen=True)
class Item:
    partition: int
    offset: int
    timestamp_ms: int
    event: ArticleEvent
    payload: bytes


class Source(Protocol):
    name: str

    def counts(self, resume: dict[int, int]) -> Counter:
        """Events per partition still to replay (after the ``resume`` positions)."""

    def items(self, resume: dict[int, int]) -> Iterator[Item]:
        """The window's events in partition order, from the ``resume`` positions on."""

    def close(self) -> None: ...


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

    def items(self, resume: dict[int, int]) -> Iterator[Item]:
        for rng in self._starts(resume):
            if rng.count == 0:
                continue
            tp = TopicPartition(self.topic, rng.partition)
            self.kafka.assign([tp])
            self.kafka.seek(tp, rng.start)
            position = rng.start
            while position < rng.stop:
                records = self.kafka.poll(timeout_ms=1000).get(tp, [])
                if not records and self.kafka.position(tp) >= rng.stop:
                    break  # the rest of the range holds no records (e.g. transaction markers)
                for record in records:
                    if record.offset >= rng.stop:
                        position = rng.stop
                        break
                    position = record.offset + 1
                    if not self.window.holds(record.timestamp):
                        continue
                    try:
                        event = codec.decode(record.value)
                    except codec.DecodeError as exc:
                        self.undecodable += 1
                        log.warning("replay_undecodable", topic=self.topic, partition=record.partition,
                                    offset=record.offset, reason=str(exc))
                        continue
                    yield Item(record.partition, record.offset, record.timestamp, event, record.value)

    def close(self) -> None:
        self.kafka.close()


class ArchiveSource:
    """The window's events from the archive index and segments, in the order they were archived."""

    name = "archive"

    def __init__(self, settings: Settings, window: Window, root: Path):
        self.topic = settings.topics.articles
        self.window = window
        self.reader = ArchiveReader(root)
        self.problems: list[Problem] = []

    def _entries(self, resume: dict[int, int]):
        for entry in self.reader.entries(since_ms=self.window.since_ms, until_ms=self.window.until_ms,
                                         topic=self.topic, by_position=True):
            if entry.offset >= resume.get(entry.partition, 0):
                yield entry

    def counts(self, resume: dict[int, int]) -> Counter:
        return Counter(entry.partition for entry in self._entries(resume))

    def items(self, resume: dict[int, int]) -> Iterator[Item]:
        for entry, event in self.reader.events(self._entries(resume), self.problems):
            payload = codec.encode(self.reader.event(entry, as_written=True), self.reader.schema_of(entry))
            yield Item(entry.partition, entry.offset, entry.published_at, event, payload)

    def close(self) -> None:
        for problem in self.problems:
            log.error("replay_archive_damaged", problem=str(problem))
        self.reader.close()
