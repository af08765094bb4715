"""Real-time pull on the feed server with real HTTP clients: long polls of /changes, the SSE
stream resumed with Last-Event-ID, and the WebSub hub (verification of intent, signed content,
lease expiry), against the real broker with the feeds consumer running in its thread."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import threading
import time
from datetime import timedelta
from typing import Callable
from urllib.parse import urlencode, urlsplit

import aiohttp
import feedparser
import pytest
from aiohttp import web

from newswire.consumers.feeds.access import Tokens
from newswire.consumers.feeds.server import Options
from newswire.consumers.webhooks.config import parse_cidrs
from tests.feeds_support import BLOG_TOKEN, Clock, feeds_running, publish, start_of_test, story
from tests.http_server import serving

pytestmark = pytest.mark.broker

OPTIONS = Options(max_age=5, base_url="https://feeds.example.org", heartbeat_s=0.3,
                  websub_allow=parse_cidrs("127.0.0.0/8"))


def until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    """Poll ``condition`` until it is true (generous deadline: CI is busy); its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def ids(body: bytes) -> list[str]:
    return [item["uri"].rsplit(":", 1)[1] for item in json.loads(body)["items"]]


@pytest.fixture
def running(settings):
    clock = Clock(start_of_test())
    with feeds_running(settings, clock, options=OPTIONS) as run:
        run.consumer.start()
        yield run


def test_long_poll_answers_when_a_story_is_published(running):
    run = running
    publish(run.settings, story("first", run.clock.now))
    until(lambda: (entry := run.view.get("first")) and entry.seq <= run.view.durable, "the first story, durable")
    cursor = run.view.durable
    answered: dict[str, object] = {}

    def poll() -> None:
        started = time.monotonic()
        answered["reply"] = run.get(f"/changes.json?since={cursor}&wait=30")
        answered["at"], answered["took"] = time.monotonic(), time.monotonic() - started

    client = threading.Thread(target=poll)
    client.start()
    until(lambda: run.server.realtime.waiting == 1 or "reply" in answered, "the long poll to be held")
    assert "reply" not in answered, "the long poll answered before anything was published"
    published_at = time.monotonic()
    publish(run.settings, story("second", run.clock.now))
    client.join(60)
    reply = answered["reply"]
    assert reply.status == 200 and ids(reply.body) == ["second"]
    assert answered["took"] < 30, "the long poll waited out its wait= instead of answering the publish"
    assert reply.headers["X-More-Changes"] == "false" and json.loads(reply.body)["more"] is False
    print(f"publish -> long-poll answer: {answered['at'] - published_at:.3f} s")

    # nothing new: an empty page once wait= has passed
    empty = run.get(f"/changes.json?since={json.loads(reply.body)['next']}&wait=1")
    assert empty.status == 200 and json.loads(empty.body)["items"] == []


def test_long_poll_parameters_more_and_fields(running):
    run = running
    publish(run.settings, *(story(f"s{i}", run.clock.now - timedelta(minutes=5 - i)) for i in range(3)))
    until(lambda: len(run.view) == 3 and run.view.durable == run.view.head, "three stories in the view")
    for bad, message in (("wait=31", "wait: must be an integer from 0 to 30"),
                         ("wait=-1", "wait: must be an integer from 0 to 30"),
                         ("wait=%C2%B2", "wait: must be an integer from 0 to 30"),
                         ("fields=id,body", "fields: 'body' is not one of id, version, type, cursor")):
        reply = run.get(f"/changes.json?since=0&{bad}")
        assert reply.status == 400 and message in json.loads(reply.body)["error"], bad
    assert run.get("/changes.newsml?since=0&fields=id").status == 400

    first = run.get("/changes.json?since=0&limit=2")
    assert first.headers["X-More-Changes"] == "true" and json.loads(first.body)["more"] is True
    rest = run.get(f"/changes.json?since={first.headers['X-Next-Cursor']}&limit=2")
    assert rest.headers["X-More-Changes"] == "false" and len(json.loads(rest.body)["items"]) == 1

    compact = json.loads(run.get("/changes.json?since=0&fields=id,version").body)
    assert sorted(compact["items"], key=lambda i: i["id"]) == [{"id": f"s{i}", "version": 1} for i in range(3)]
    assert run.get("/changes.newsml?since=0").headers["X-More-Changes"] == "false"


def test_a_long_poll_is_answered_only_by_a_change_its_partner_may_see(settings, tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"blog": {"token": BLOG_TOKEN, "feeds": ["lang-fr"]}}))
    clock = Clock(start_of_test())
    with feeds_running(settings, clock, tokens=Tokens.load(tokens), options=OPTIONS) as run:
        run.consumer.start()
        auth = {"Authorization": f"Bearer {BLOG_TOKEN}"}
        cursor = run.view.durable
        answered: dict[str, object] = {}
        client = threading.Thread(target=lambda: answered.update(
            reply=run.get(f"/partners/blog/changes.json?since={cursor}&wait=30", **auth)))
        client.start()
        until(lambda: run.server.realtime.waiting == 1, "the partner's long poll to be held")
        publish(run.settings, story("in-english", clock.now, language="en"))
        until(lambda: (entry := run.view.get("in-english")) and entry.seq <= run.view.durable, "the English story")
        publish(run.settings, story("en-francais", clock.now, language="fr"))
        client.join(60)
        assert ids(answered["reply"].body) == ["en-francais"]  # the English story did not answer it
        assert run.get("/partners/blog/changes.sse").status == 401


async def _read_events(response: aiohttp.ClientResponse, count: int, seen: list[str]) -> list[dict]:
    """Read ``count`` change events (their id and data) off an event stream; comments go to ``seen``."""
    events: list[dict] = []
    event: dict = {}
    while len(events) < count:
        line = (await asyncio.wait_for(response.content.readline(), 60)).decode().rstrip("\n")
        if line.startswith(":"):
            seen.append(line)
        elif line == "":
            if "data" in event:
                events.append(event)
            event = {}
        else:
            name, _, value = line.partition(": ")
            event[name] = value
    return events


def test_sse_resumes_after_a_dropped_connection_without_a_gap(running):
    run = running
    base = run.base

    async def scenario() -> tuple[list[dict], list[dict], list[str], str]:
        comments: list[str] = []
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base}/changes.sse?since=0") as stream:
                content_type = stream.headers["Content-Type"]
                await asyncio.to_thread(publish, run.settings, story("a", run.clock.now), story("b", run.clock.now))
                before = await _read_events(stream, 2, comments)
                await _read_events_or_heartbeat(stream, comments)
            # the connection is dropped; two more stories come meanwhile
            await asyncio.to_thread(publish, run.settings, story("c", run.clock.now), story("d", run.clock.now))
            await asyncio.to_thread(until, lambda: len(run.view) == 4 and run.view.durable == run.view.head,
                                    "four stories in the view")
            async with client.get(f"{base}/changes.sse", headers={"Last-Event-ID": before[-1]["id"]}) as stream:
                after = await _read_events(stream, 2, comments)
        return before, after, comments, content_type

    before, after, comments, content_type = asyncio.run(scenario())
    assert content_type.startswith("text/event-stream")
    got = [json.loads(e["data"])["uri"].rsplit(":", 1)[1] for e in before + after]
    assert sorted(got[:2]) == ["a", "b"] and sorted(got[2:]) == ["c", "d"]
    cursors = [int(e["id"]) for e in before + after]
    assert cursors == sorted(cursors) and len(set(cursors)) == 4
    assert {e["event"] for e in before + after} == {"change"}
    assert ": heartbeat" in comments
    assert run.get("/changes.sse", Last_Event_ID="x1").status == 400
    assert run.get(f"/changes.sse?since={run.view.durable + 1}").status == 400


async def _read_events_or_heartbeat(response: aiohttp.ClientResponse, comments: list[str]) -> None:
    """Read until the stream has sent a heartbeat comment (it has nothing else to send)."""
    while ": heartbeat" not in comments:
        line = (await asyncio.wait_for(response.content.readline(), 60)).decode().rstrip("\n")
        if line.startswith(":"):
            comments.append(line)


class Subscriber:
    """A WebSub subscriber on 127.0.0.1: confirms the intent (or not), records what it is sent."""

    def __init__(self, confirm: bool = True, answer: int = 204):
        self.confirm = confirm
        self.answer = answer
        self.verifications: list[dict[str, str]] = []
        self.deliveries: list[tuple[dict[str, str], bytes]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cb", self.verify)
        app.router.add_post("/cb", self.receive)
        return app

    async def verify(self, request: web.Request) -> web.Response:
        self.verifications.append(dict(request.query))
        if not self.confirm:
            return web.Response(status=404)
        return web.Response(text=request.query["hub.challenge"])

    async def receive(self, request: web.Request) -> web.Response:
        self.deliveries.append((dict(request.headers), await request.read()))
        return web.Response(status=self.answer)


def post_form(url: str, fields: dict[str, str]) -> tuple[int, str]:
    """A form POST with the standard library's HTTP client: the status and the text answered."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", parts.path, body=urlencode(fields),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_websub_subscriber_verified_gets_signed_content_and_is_dropped_when_its_lease_ends(running):
    run = running
    topic = "https://feeds.example.org/feeds/all.atom"
    publish(run.settings, story("old", run.clock.now))
    until(lambda: run.view.get("old") and run.view.durable == run.view.head, "the first story in the view")

    feed_reply = run.get("/feeds/all.atom")
    assert feed_reply.headers["Link"] == f'<https://feeds.example.org/websub>; rel="hub", <{topic}>; rel="self"'
    links = {link.rel: link.href for link in feedparser.parse(feed_reply.body).feed.links}
    assert links["hub"] == "https://feeds.example.org/websub" and links["self"] == topic
    rss = feedparser.parse(run.get("/feeds/all.rss").body)
    assert "https://feeds.example.org/websub" in [link.href for link in rss.feed.links if link.rel == "hub"]

    subscriber, refuser = Subscriber(), Subscriber(confirm=False)
    with serving(subscriber.app()) as sub_base, serving(refuser.app()) as refuser_base:
        form = {"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": f"{sub_base}/cb",
                "hub.lease_seconds": "120", "hub.secret": "s3cret-of-the-subscriber"}
        for change, field in (({"hub.mode": "follow"}, "hub.mode"),
                              ({"hub.topic": "https://evil.example/x"}, "hub.topic"),
                              ({"hub.callback": "ftp://x/"}, "hub.callback"),
                              ({"hub.lease_seconds": "1e3"}, "hub.lease_seconds"),
                              ({"hub.callback": "http://169.254.169.254/latest"}, "hub.callback"),
                              ({"hub.callback": "http://10.1.2.3/cb"}, "hub.callback"),
                              ({"hub.secret": "x" * 200}, "hub.secret")):
            status, text = post_form(run.base + "/websub", form | change)
            assert status == 400 and text.startswith(field), (change, text)
        assert "metadata" in post_form(run.base + "/websub", form | {"hub.callback": "http://169.254.169.254/"})[1]

        assert post_form(run.base + "/websub", form)[0] == 202
        assert post_form(run.base + "/websub", form | {"hub.callback": f"{refuser_base}/cb"})[0] == 202
        hub = run.server.hub
        stored = until(lambda: hub.store.all(), "the subscription to be verified and stored")
        until(lambda: refuser.verifications and not hub.busy, "the refused verification")
        assert [s.callback for s in stored] == [f"{sub_base}/cb"]  # the refuser did not confirm
        check = subscriber.verifications[0]
        assert check["hub.mode"] == "subscribe" and check["hub.topic"] == topic and check["hub.lease_seconds"] == "120"
        assert stored[0].expires == run.clock.now + timedelta(seconds=120)

        publish(run.settings, story("fresh", run.clock.now))
        headers, body = until(lambda: subscriber.deliveries and subscriber.deliveries[-1], "the content distribution")
        expected = "sha256=" + hmac.new(b"s3cret-of-the-subscriber", body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature"] == expected
        assert headers["Content-Type"].startswith("application/atom+xml")
        assert f'<{topic}>; rel="self"' in headers["Link"]
        assert "fresh" in {e.title.split(":")[0] for e in feedparser.parse(body).entries}

        # a renewal before the lease ends: verified again, a new lease
        run.clock.advance(seconds=60)
        assert post_form(run.base + "/websub", form | {"hub.lease_seconds": "300"})[0] == 202
        until(lambda: hub.store.all()[0].lease_s == 300, "the renewal")
        assert hub.store.all()[0].expires == run.clock.now + timedelta(seconds=300)

        # a subscriber answering 410 is dropped; one that unsubscribes is verified, then removed
        gone, leaving = Subscriber(answer=410), Subscriber()
        with serving(gone.app()) as gone_base, serving(leaving.app()) as leaving_base:
            for base in (gone_base, leaving_base):
                assert post_form(run.base + "/websub", form | {"hub.callback": f"{base}/cb"})[0] == 202
            until(lambda: len(hub.store.all()) == 3, "three subscriptions")
            before = len(subscriber.deliveries)
            publish(run.settings, story("for-three", run.clock.now))
            until(lambda: gone.deliveries and leaving.deliveries and len(subscriber.deliveries) > before
                  and len(hub.store.all()) == 2, "the 410 to drop one")
            assert post_form(run.base + "/websub", form | {"hub.mode": "unsubscribe",
                                                          "hub.callback": f"{leaving_base}/cb"})[0] == 202
            until(lambda: len(hub.store.all()) == 1, "the unsubscription")
            assert leaving.verifications[-1]["hub.mode"] == "unsubscribe"
            assert [s.callback for s in hub.store.all()] == [f"{sub_base}/cb"]

        # the lease ends: dropped, and the next story is not sent
        run.clock.advance(seconds=301)
        delivered = len(subscriber.deliveries)
        publish(run.settings, story("after-lease", run.clock.now))
        until(lambda: (entry := run.view.get("after-lease")) and hub.cursor >= entry.seq and not hub.busy,
              "the hub to handle the story after the lease")
        assert hub.store.all() == [] and len(subscriber.deliveries) == delivered
