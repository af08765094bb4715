"""A replay window ``[since, until)`` of record timestamps, and the Kafka offsets it spans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition

from newswire import bus
from newswire.config import Settings
from newswire.timespec import to_ms


@dataclass(frozen=True)
class Window:
    """Record timestamps in ``[since_ms, until_ms)``; None means unbounded."""

    since_ms: int | None = None
    until_ms: int | None = None

    @classmethod
    def of(cls, since: datetime | None, until: datetime | None) -> "Window":
        window = cls(since and to_ms(since), until and to_ms(until))
        if window.since_ms is not None and window.until_ms is not None and window.until_ms <= window.since_ms:
            raise ValueError(f"--until ({until.isoformat()}) must be later than --since ({since.isoformat()})")
        return window

    def holds(self, timestamp_ms: int) -> bool:
        return ((self.since_ms is None or timestamp_ms >= self.since_ms)
                and (self.until_ms is None or timestamp_ms < self.until_ms))


@dataclass(frozen=True)
class Range:
    """Offsets ``[start, stop)`` of one partition."""

    partition: int
    start: int
    stop: int

    @property
    def count(self) -> int:
        return max(0, self.stop - self.start)


def _offsets_at(kafka: KafkaConsumer, tps: list[TopicPartition], at_ms: int | None,
                fallback: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The first offset whose timestamp is >= ``at_ms`` per partition (``fallback`` when none is)."""
    if at_ms is None:
        return dict(fallback)
    found = kafka.offsets_for_times({tp: at_ms for tp in tps})
    return {tp: found[tp].offset if found.get(tp) is not None else fallback[tp] for tp in tps}


def kafka_ranges(kafka: KafkaConsumer, topic: str, window: Window,
                 wait_s: float = Settings.topic_wait_s) -> list[Range]:
    """Per partition of ``topic``, the offsets whose records fall in ``window`` (by ``offsets_for_times``);
    TopicMissing when the broker has not named its partitions within ``wait_s``."""
    tps = bus.partitions(kafka, topic, wait_s)
    beginning, end = kafka.beginning_offsets(tps), kafka.end_offsets(tps)
    start = _offsets_at(kafka, tps, window.since_ms, end) if window.since_ms is not None else beginning
    stop = _offsets_at(kafka, tps, window.until_ms, end)
    return [Range(tp.partition, start[tp], max(start[tp], stop[tp])) for tp in tps]
