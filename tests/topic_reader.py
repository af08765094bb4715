"""Test helpers that read topics back and drive a consume loop."""

from __future__ import annotations

import time


from newswire import bus, codec
from newswire.bus import EventLoop
from newswire.config import Settings


def read_topic(settings: Settings, topic: str, timeout_s: float = 20.0) -> list:
    """Every record now on ``topic``, read to its end offsets, in partition/offset order."""
    reader = bus.consumer(settings, None)
    deadline = time.monotonic() + timeout_s
    try:
        partitions = bus.partitions(reader, topic, timeout_s)
        reader.assign(partitions)
        reader.seek_to_beginning()
        ends = reader.end_offsets(partitions)
        found: list = []
        while any(reader.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for records in reader.poll(timeout_ms=500).values():
                found.extend(records)
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        reader.close(autocommit=False)


def read_events(settings: Settings, timeout_s: float = 20.0) -> list[tuple[dict, object]]:
    """``(event, record)`` for every record now on the articles topic, in partition/offset order."""
    return [(codec.decode(r.value), r) for r in read_topic(settings, settings.topics.articles, timeout_s)]


def dead_letters(settings: Settings, timeout_s: float = 30.0) -> list:
    """Every record on the dead-letter topic."""
    return read_topic(settings, settings.topics.dead_letter, timeout_s)


def drain(loop: EventLoop, expected: int, timeout_s: float = 120.0) -> None:
    """Poll ``loop`` until it has processed ``expected`` messages; fail if they do not arrive
    within ``timeout_s`` (a time, not a number of polls: a poll during a group join may return
    at once)."""
    seen, deadline = 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += loop.poll_once(timeout_ms=300)
        if seen >= expected:
            return
    raise AssertionError(f"only {seen} of {expected} messages arrived in {timeout_s:g} s")
