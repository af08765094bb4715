"""Read back every event of a test's articles topic, decoded, with where each was written."""

from __future__ import annotations

import time

from kafka import TopicPartition

from newswire import bus, codec
from newswire.config import Settings


def read_events(settings: Settings, timeout_s: float = 20.0) -> list[tuple[dict, object]]:
    """``(event, record)`` for every record now on the articles topic, in partition/offset order."""
    reader = bus.consumer(settings, None)
    try:
        topic = settings.topics.articles
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        reader.seek_to_beginning()
        ends = reader.end_offsets(partitions)
        found: list = []
        deadline = time.monotonic() + timeout_s
        while any(reader.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for records in reader.poll(timeout_ms=500).values():
                found.extend(records)
        found.sort(key=lambda r: (r.partition, r.offset))
        return [(codec.decode(r.value), r) for r in found]
    finally:
        reader.close(autocommit=False)
