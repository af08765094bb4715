"""What the feed server and drop folder tests share: a clock the test moves, the consumer and
server running against the real broker, a plain HTTP client, and the dead-letter topic."""

from __future__ import annotations

import contextlib
import http.client
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import urlsplit

from newswire import bus, corpus
from newswire.config import Settings
from newswire.consumers.feeds.access import Tokens
from newswire.consumers.feeds.consumer import FeedsConsumer, open_view
from newswire.consumers.feeds.server import FeedServer, Options
from newswire.consumers.feeds.store import ViewStore
from newswire.consumers.feeds.view import FeedView
from newswire.consumers.replay import groups
from tests.http_server import serving
from tests.replay_support import own_group

ACME_TOKEN = "acme-token-0123456789abcdef"
BLOG_TOKEN = "blog-token-0123456789abcdef"


class Clock:
    """The server's and consumer's clock, moved by the test."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def start_of_test() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def story(article_id: str, at: datetime, **changes) -> dict:
    event = corpus.story(random.Random(article_id), article_id, occurred_at=at, body_bytes=800,
                         language=changes.pop("language", "en"))
    event["headline"] = f"{article_id}: {event['headline']}"
    event.update(changes)
    return event


def publish(settings: Settings, *events: dict) -> None:
    kafka = bus.producer(settings)
    try:
        bus.publish_events(settings, kafka, events)
    finally:
        kafka.close()


def send_raw(settings: Settings, key: bytes, value: bytes) -> None:
    kafka = bus.producer(settings)
    try:
        kafka.send(settings.topics.articles, key=key, value=value).get(timeout=10)
    finally:
        kafka.close()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def fetch(url: str, headers: dict[str, str] | None = None) -> Reply:
    """One GET with the standard library's HTTP client (no automatic decompression)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


@dataclass
class Running:
    settings: Settings
    clock: Clock
    view: FeedView
    store: ViewStore
    consumer: FeedsConsumer
    base: str
    server: FeedServer

    def catch_up(self, timeout_s: float = 120.0) -> None:
        """Poll (in this thread) until the view holds everything on the topic, for at most
        ``timeout_s`` (a time, not a number of polls: a poll during a group join may return at once)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.consumer.poll(200)
            if self.consumer.caught_up():
                return
        raise AssertionError(f"the feeds consumer did not catch up with the topic in {timeout_s:g} s; "
                             f"its group: {_group_seen(self.settings, self.consumer.group_id)}")

    def get(self, path: str, **headers: str) -> Reply:
        return fetch(self.base + path, {k.replace("_", "-"): v for k, v in headers.items()})


@contextlib.contextmanager
def feeds_running(settings: Settings, clock: Clock, tokens: Tokens | None = None,
                  options: Options = Options(max_age=5, base_url="https://feeds.example.org")) -> Iterator[Running]:
    """The view (loaded from the home), the consumer (in the test's own group) and the feed
    server on 127.0.0.1."""
    view, store = open_view(settings)
    consumer = FeedsConsumer(settings, view, store, clock=clock, group_id=own_group(settings, "feeds"))
    tokens = tokens or Tokens.parse(f"acme:{ACME_TOKEN}")
    server = FeedServer(view, store=store, tokens=tokens, clock=clock, options=options)
    try:
        with serving(server.app()) as base:
            yield Running(settings, clock, view, store, consumer, base, server)
    finally:
        consumer.stop()
        store.close()


def _group_seen(settings: Settings, group: str) -> str:
    """The group's state and members as the broker has them (who else holds it), for a failure."""
    try:
        state, members = groups.members(settings, group)
    except Exception as exc:  # a failure message, never a second failure
        return f"not described ({type(exc).__name__}: {exc})"
    return f"{group} {state}, members {members}"
