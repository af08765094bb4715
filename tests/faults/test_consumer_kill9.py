"""Each consumer, a real ``newswire`` process, is killed with SIGKILL in the middle of a stream of
1,000 events, started again, and every output it made is checked once it has caught up.

Injected, in every test: 1,000 generated events (``corpus.stream``: new stories, updates,
corrections, kills, withdrawals; 500-byte bodies) published in chunks while the consumer runs;
``kill -9`` of the consumer once about a third of its outputs exist (the test asserts that the
outputs were partial at the kill); a restart while the stream may still be arriving; a clean
SIGTERM at the end (exit status 0).

Asserted, per consumer:

* ``newswire feeds serve`` — after the restart, over HTTP, every feed in every format equals the
  feed of a view built in this process from the same events (``FeedView``, pure): the same
  articles at the same versions in the same order; kills and withdrawals out of RSS and Atom
  (their items answer 410) and present in NewsML-G2 (valid against the 2.35 XSD) and ninjs; the
  change cursor from 0 hands out every article exactly once, at its latest version; no event was
  applied twice (``stale_events`` 0: the stored positions are exact).
* ``newswire newsml drop`` — exactly one file per event (``YYYY/MM/DD/<article>_v<version>.xml``),
  byte for byte the renderer's newsItem, each valid against the NewsML-G2 2.35 XSD; no temporary
  or partial file left; nothing dead-lettered.
* ``newswire webhooks run`` — the partner (a real HTTP server verifying every signature with
  ``standardwebhooks``) received every event with a 2xx; a push repeated across the kill carries
  the same ``webhook-id``, sequence number and body (what the partner de-duplicates by); the
  sequence is gapless 1..1,000; per article the versions arrive in order, the kill last.

Not here, already covered the same way: the archive (``tests/test_archive_crash.py``: 3,000
events, at least five kills at random moments, every event archived exactly once, every file
agreeing with the index); the pusher killed in the middle of *retries*
(``tests/test_webhooks_restart.py``: same ``webhook-id`` and sequence number after the restart).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from lxml import etree

from newswire import bus, corpus, lag
from newswire.broker import free_port
from newswire.config import Settings
from newswire.consumers.feeds.consumer import GROUP as FEEDS_GROUP
from newswire.consumers.feeds.drop_folder import GROUP as NEWSML_GROUP
from newswire.consumers.feeds.drop_folder import relative_path
from newswire.consumers.feeds.view import FeedView
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.signing import new_secret
from newswire.formats import newsml
from tests.feeds_support import fetch
from tests.official_schemas import newsml_schema
from tests.replay_support import NEWSWIRE, cli_env
from tests.webhooks_support import PartnerServer, query, register, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

EVENTS = 1000
#: the consumer is killed once this share of its outputs exists
KILL_AT = 0.35
#: deadline for a consumer to produce what it must (against hanging, not a timed assertion)
DEADLINE_S = 120.0
N = {"n": "http://iptc.org/std/nar/2006-10-01/"}
ATOM = "{http://www.w3.org/2005/Atom}"


def stream_of(seed: int) -> list[dict]:
    return list(corpus.stream(EVENTS, seed, body_bytes=500))


class Publishing(threading.Thread):
    """Publishes the events in chunks, as a newsroom would while the consumer runs: the first
    half, then, once :attr:`second_half` is set, the rest."""

    def __init__(self, settings: Settings, events: list[dict], chunk: int = 50, pause_s: float = 0.05):
        super().__init__(name="publishing", daemon=True)
        self.settings, self.events, self.chunk, self.pause_s = settings, events, chunk, pause_s
        self.half = len(events) // 2
        self.second_half = threading.Event()
        self.sent = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        kafka = bus.producer(self.settings)
        try:
            for start in range(0, len(self.events), self.chunk):
                if start >= self.half:
                    self.second_half.wait(DEADLINE_S)
                bus.publish_events(self.settings, kafka, self.events[start:start + self.chunk])
                self.sent = start + self.chunk
                time.sleep(self.pause_s)
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            kafka.close(timeout=10)


class Consumer:
    """One consumer command as a real process (``python -m newswire.cli ...``), output to a log."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path):
        self.argv, self.env, self.log = argv, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([*NEWSWIRE, *self.argv], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(30) == -signal.SIGKILL

    def stop(self) -> int:
        """SIGTERM (a clean stop) if it still runs; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def caught_up(settings: Settings, group: str) -> bool:
    """Consumer lag 0 on every partition of the test's topic, from the broker's own records."""
    rows = [row for row in lag.group_lag(settings) if row.group == group]
    return bool(rows) and all(row.lag == 0 for row in rows)


def kill_in_the_middle(settings: Settings, consumer: Consumer, events: list[dict], outputs: Callable[[], int],
                       total: int, group: str, on_kill: Callable[[], None] = lambda: None) -> int:
    """Run ``consumer`` while the first half of ``events`` is published, SIGKILL it once
    ``outputs()`` reaches ``KILL_AT`` of ``total``, start it again while the second half is
    published, and wait until it has caught up. Returns the number of outputs at the kill
    (after it: what the killed process left); ``on_kill`` looks at what it left before the restart."""
    consumer.start()
    publishing = Publishing(settings, events)
    publishing.start()
    # the publisher holds at the half until the restart, so the kill falls between KILL_AT and the half
    wait_for(lambda: (outputs() >= KILL_AT * total and publishing.sent == publishing.half)
             or consumer.process.poll() is not None,
             f"{KILL_AT:.0%} of the outputs with the first half published", timeout_s=DEADLINE_S)
    assert consumer.process.poll() is None, consumer.tail()
    consumer.kill9()
    at_kill = outputs()
    assert 0 < at_kill < total and publishing.sent == publishing.half  # in the middle of the stream
    on_kill()
    consumer.start()
    publishing.second_half.set()
    publishing.join(DEADLINE_S)
    assert publishing.failure is None and publishing.sent >= len(events)
    wait_for(lambda: consumer.process.poll() is not None or (outputs() >= total and caught_up(settings, group)),
             "every output after the restart, consumer lag 0", timeout_s=DEADLINE_S)
    assert consumer.process.poll() is None, consumer.tail()
    return at_kill


def sqlite_count(path: Path, sql: str) -> int:
    if not path.exists():  # (connecting would create it)
        return 0
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not created yet
        return 0
    finally:
        db.close()


# --- feeds ---------------------------------------------------------------------------------------

def article_of(uri: str) -> str:
    return uri.rsplit(":", 1)[1]


def feed_items(fmt: str, body: bytes) -> list:
    """(article id, version) of each item of a feed, in order; article ids only for RSS and Atom."""
    if fmt == "json":
        return [(article_of(i["uri"]), int(i["version"])) for i in json.loads(body)["items"]]
    root = etree.fromstring(body)
    if fmt == "newsml":
        newsml_schema().assertValid(root)
        return [(article_of(i.get("guid")), int(i.get("version"))) for i in root.iterfind(".//n:newsItem", N)
                if i.find("n:itemMeta/n:itemClass", N).get("qcode") == "ninat:text"]
    if fmt == "rss":
        return [article_of(guid.text) for guid in root.iterfind("channel/item/guid")]
    return [article_of(entry.findtext(f"{ATOM}id")) for entry in root.iterfind(f"{ATOM}entry")]


def test_feeds_serve_killed_in_the_middle_serves_the_pure_view_after_restart(settings, tmp_path):
    events = stream_of(seed=61)
    expected = FeedView()
    now = datetime.now(timezone.utc)
    for event in events:
        expected.apply(event, now)
    articles = len(expected)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    view_file = settings.home / "feeds" / "view.sqlite3"
    consumer = Consumer(["feeds", "serve", "--port", str(port)], cli_env(settings), tmp_path / "feeds.log")
    try:
        at_kill = kill_in_the_middle(settings, consumer, events,
                                     lambda: sqlite_count(view_file, "SELECT count(*) FROM articles"),
                                     articles, FEEDS_GROUP)
        wait_for(lambda: _health(base) is not None, "the restarted feed server answers", timeout_s=DEADLINE_S)
        health = _health(base)
        assert health == health | {"articles": articles, "stale_events": 0, "consumer": "running"}

        index = json.loads(fetch(base + "/feeds").body)["feeds"]
        assert {name: feed["articles"] for name, feed in index.items()} == expected.feeds()
        dead = {entry.article_id for entry in expected.snapshot() if entry.dead}
        assert dead  # the stream has kills and withdrawals
        for name in expected.feeds():
            for fmt in ("rss", "atom", "newsml", "json"):
                wire = fmt in ("newsml", "json")  # RSS: kills as notices; Atom: as tombstones, not entries
                want = [(e.article_id, e.version) if wire else e.article_id
                        for e in expected.items(name, now, limit=500) if fmt != "atom" or not e.dead]
                reply = fetch(f"{base}/feeds/{name}.{fmt}?limit=500")
                assert reply.status == 200, (name, fmt, reply.status)
                assert feed_items(fmt, reply.body) == want, f"/feeds/{name}.{fmt}"
        for article_id in sorted(dead):
            assert fetch(f"{base}/items/{article_id}.rss").status == 410

        received: list[tuple[str, int]] = []
        cursor = 0
        while True:
            reply = fetch(f"{base}/changes.json?since={cursor}&limit=500")
            page = feed_items("json", reply.body)
            if not page:
                break
            received += page
            cursor = int(reply.headers["X-Next-Cursor"])
        assert len(received) == len(set(a for a, _ in received)) == articles  # each article exactly once
        assert dict(received) == {e.article_id: e.version for e in expected.snapshot()}  # at its latest version
    finally:
        status = consumer.stop()
    assert status == 0, consumer.tail()
    assert 0 < at_kill < articles


def _health(base: str) -> dict | None:
    try:
        reply = fetch(base + "/health")
    except OSError:
        return None
    return json.loads(reply.body) if reply.status == 200 else None


# --- NewsML-G2 drop folder -----------------------------------------------------------------------

def test_newsml_drop_killed_in_the_middle_leaves_one_whole_valid_file_per_event(settings, tmp_path):
    events = stream_of(seed=62)
    root = tmp_path / "drop"
    consumer = Consumer(["newsml", "drop", "--dir", str(root)], cli_env(settings), tmp_path / "drop.log")
    try:
        at_kill = kill_in_the_middle(settings, consumer, events, lambda: sum(1 for _ in root.rglob("*.xml")),
                                     len(events), NEWSML_GROUP)
    finally:
        status = consumer.stop()
    assert status == 0, consumer.tail()
    assert "dead_lettered=0" in consumer.tail()

    expected = {str(relative_path(event)): event for event in events}
    assert len(expected) == len(events)  # one name per (article, version)
    found = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert found == set(expected) | {".newswire-drop.lock"}  # no temporary or partial file, nothing else
    schema = newsml_schema()
    for name, event in expected.items():
        data = (root / name).read_bytes()
        assert data == newsml.news_item_bytes(event), name
        item = etree.fromstring(data)
        schema.assertValid(item)
        assert (article_of(item.get("guid")), item.get("version")) == (event["article_id"], str(event["version"]))
    assert 0 < at_kill < len(events)


# --- webhooks ------------------------------------------------------------------------------------

def test_webhooks_run_killed_in_the_middle_delivers_everything_once_per_webhook_id(settings, tmp_path):
    events = stream_of(seed=63)
    by_id = {event["event_id"]: event for event in events}
    server = PartnerServer([new_secret()]).start()
    register(settings, "wire-all", server, concurrency=8)
    env = cli_env(settings) | {"NEWSWIRE_WEBHOOK_SCHEDULE": "0,0.3,0.3,0.3,0.3,0.3", "NEWSWIRE_WEBHOOK_JITTER": "0",
                               "NEWSWIRE_WEBHOOK_TIMEOUT": "5", "NEWSWIRE_WEBHOOK_POLL": "0.2"}
    consumer = Consumer(["webhooks", "run"], env, tmp_path / "pusher.log")
    unrecorded: set[str] = set()  # pushes the partner had when the pusher died, not yet recorded as delivered

    def on_kill() -> None:
        recorded = {row[0] for row in query(settings, "SELECT event_id FROM deliveries WHERE status = 'delivered'")}
        unrecorded.update({r.webhook_id for r in server.ok()} - recorded)

    try:
        at_kill = kill_in_the_middle(
            settings, consumer, events, lambda: len({r.webhook_id for r in server.ok()}), len(events),
            WebhookConfig.group_id, on_kill)
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
                 == len(events), "every delivery recorded as delivered", timeout_s=DEADLINE_S)
    finally:
        status = consumer.stop()
        server.stop()
    assert status == 0, consumer.tail()
    assert [tuple(row) for row in query(settings, "SELECT status, count(*) FROM deliveries GROUP BY status")] \
        == [("delivered", len(events))]

    got = server.snapshot()
    assert all(r.verified for r in got)
    delivered = server.ok()
    assert len(delivered) == len(got)  # the partner answered 200 to everything
    assert {r.webhook_id for r in delivered} == set(by_id)  # nothing lost
    first: dict[str, object] = {}
    for r in delivered:  # a repeat is recognisable: same webhook-id, same sequence number, same body
        seen = first.setdefault(r.webhook_id, r)
        assert (seen.seq, seen.body) == (r.seq, r.body)
        event = by_id[r.webhook_id]
        assert r.article == (event["article_id"], event["version"], event["event_type"])
    assert sorted(r.seq for r in first.values()) == list(range(1, len(events) + 1))  # gapless, none reused
    arrived: dict[str, list[int]] = defaultdict(list)
    for r in delivered:
        arrived[r.article[0]].append(r.article[1])
    for article_id, versions in arrived.items():  # in order per article (a repeat may follow itself)
        assert versions == sorted(versions), article_id
        assert sorted(set(versions)) == list(range(1, max(versions) + 1)), article_id
    last = {e["article_id"]: e for e in events}
    assert all(arrived[a][-1] == e["version"] for a, e in last.items())  # a kill is the last thing sent
    repeats = Counter(r.webhook_id for r in delivered)
    # pushed again: only what the partner had got but the pusher had not recorded when it died
    assert {webhook_id for webhook_id, n in repeats.items() if n > 1} <= unrecorded
    assert max(repeats.values()) <= 2
    assert 0 < at_kill < len(events)
