"""Helpers shared by the archive and replay tests: timestamped events on the test's topic,
the environment of a ``newswire`` subprocess pointed at the test's broker, topics and home."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from newswire import bus, codec, corpus
from newswire.config import Settings

ROOT = Path(__file__).resolve().parent.parent
NEWSWIRE = [sys.executable, "-m", "newswire.cli"]
#: when the tests' events start: noon a week ago, so that windows back from now ("30d") hold them
#: on any day the suite runs, and hours after T0 fall on the same dates relative to it
T0 = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=7)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def cli_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.to_env(), "NEWSWIRE_LOG_LEVEL": "WARNING",
            "NEWSWIRE_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8"}


def own_group(settings: Settings, service: str) -> str:
    """A consumer group of ``service`` (``feeds``, ``newsml``, ``archive``, ``webhooks``) for this
    test alone, named after its topic (one per test), as webhooks_support names the pusher's: a member an
    earlier test left in the service's fixed group cannot hold this test's partitions."""
    return f"{service}-{settings.topics.articles}"


def own_groups(settings: Settings) -> dict[str, str]:
    """The ``NEWSWIRE_*_GROUP`` variables that put a ``newswire`` subprocess's feeds consumer,
    drop folder and archive in this test's own groups (:func:`own_group`)."""
    return {f"NEWSWIRE_{service.upper()}_GROUP": own_group(settings, service)
            for service in ("feeds", "newsml", "archive")}


def events(n: int, seed: int = 11, body_bytes: int = 1200) -> list[dict]:
    return list(corpus.stream(n, seed, body_bytes=body_bytes))


def produce(settings: Settings, items: list[dict], start: datetime = T0, step: timedelta = timedelta(minutes=1),
            v1_every: int = 0) -> list[int]:
    """Send ``items`` with record timestamps ``start + i*step`` (every ``v1_every``-th written as
    schema v1); wait for Kafka to confirm; return the timestamps used."""
    kafka = bus.producer(settings)
    stamps, futures = [], []
    for i, event in enumerate(items):
        stamp = ms(start + i * step)
        schema = None
        if v1_every and i % v1_every == 0:
            schema = codec.schema_version(1)
            event = {k: v for k, v in event.items() if k != "content_warning"}
        futures.append(bus.send_event(kafka, settings.topics.articles, event, schema, timestamp_ms=stamp))
        stamps.append(stamp)
    kafka.flush(timeout=30)
    for future in futures:
        future.get(timeout=30)
    kafka.close()
    return stamps
