"""The feeds consumer and feed server end to end: real broker, real HTTP on 127.0.0.1,
outputs checked with feedparser, the NewsML-G2 2.35 XSD and the ninjs 3.1 schema."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import time
from datetime import timedelta
from email.utils import format_datetime
from urllib.parse import quote

import feedparser
import pytest
from lxml import etree

from newswire import codec, corpus
from newswire.broker import free_port
from newswire.bus import header
from newswire.consumers.feeds.access import Tokens
from tests.feeds_support import (
    ACME_TOKEN, BLOG_TOKEN, Clock, feeds_running, fetch, publish, send_raw, start_of_test, story,
)
from tests.replay_support import NEWSWIRE, cli_env, own_groups
from tests.official_schemas import ninjs_validator
from tests.topic_reader import dead_letters
from tests.test_format_newsml import SCHEMA as NEWSML_SCHEMA

N = {"n": "http://iptc.org/std/nar/2006-10-01/"}
pytestmark = pytest.mark.broker


def newsml(body: bytes) -> etree._Element:
    root = etree.fromstring(body)
    NEWSML_SCHEMA.assertValid(root)
    return root


def ninjs_items(body: bytes, version: str = "3.1") -> list[dict]:
    items = json.loads(body)["items"]
    for item in items:
        assert [e.message for e in ninjs_validator(version).iter_errors(item)] == []
    return items


def feed(body: bytes) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def statuses(root: etree._Element) -> dict[str, str]:
    """guid -> pubStatus of the text items of a newsMessage."""
    return {item.get("guid"): item.find("n:itemMeta/n:pubStatus", N).get("qcode")
            for item in root.iterfind(".//n:newsItem", N)
            if item.find("n:itemMeta/n:itemClass", N).get("qcode") == "ninat:text"}


def article_of(guid: str) -> str:
    return guid.rsplit(":", 1)[1]


def test_every_feed_and_item_format_validates(settings):
    clock = Clock(start_of_test())
    events = [story(f"st-{i}", clock.now - timedelta(minutes=10 - i), language=lang, categories=["politics", "economy"])
              for i, lang in enumerate(["en", "ar", "he", "fr", "en"])]
    publish(settings, *events)
    with feeds_running(settings, clock) as run:
        run.catch_up()
        rss = feed(run.get("/feeds/all.rss").body)
        assert [e.id for e in rss.entries][:1] and len(rss.entries) == 5
        assert [e.title for e in rss.entries] == [e["headline"] for e in reversed(events)]
        atom = feed(run.get("/feeds/category-politics.atom").body)
        assert len(atom.entries) == 5 and atom.feed.title == "newswire: category-politics"
        reply = run.get("/feeds/lang-en.newsml")
        assert reply.headers["Content-Type"].startswith("application/vnd.iptc.g2.newsmessage+xml")
        assert [article_of(g) for g in statuses(newsml(reply.body))] == ["st-4", "st-0"]
        items = ninjs_items(run.get("/feeds/all.json?limit=3").body)
        assert [i["headlines"][0]["value"] for i in items] == [e["headline"] for e in reversed(events)][:3]

        item = newsml(run.get("/items/st-1").body)
        assert item.tag == "{%s}newsItem" % N["n"] and item.get("version") == "1"
        assert ninjs_items(b'{"items": [%s]}' % run.get("/items/st-2?format=ninjs").body)[0]["language"] == "he"
        assert ninjs_items(b'{"items": [%s]}' % run.get("/items/st-2.json").body)[0]["language"] == "he"
        assert len(feed(run.get("/items/st-3.rss").body).entries) == 1
        assert len(feed(run.get("/items/st-3?format=atom").body).entries) == 1

        index = json.loads(run.get("/feeds").body)["feeds"]
        assert index["all"]["articles"] == 5 and index["lang-ar"]["rss"].endswith("/feeds/lang-ar.rss")
        assert run.get("/feeds/category-sport.rss").status == 404
        assert run.get("/feeds/Nope.rss").status == 404
        assert run.get("/items/missing.newsml").status == 404
        assert run.get("/feeds/all.rss?limit=0").status == 400
        assert run.get("/items/st-1?format=pdf").status == 400


def test_kill_correction_and_withdrawal_show_in_every_format(settings):
    clock = Clock(start_of_test())
    a, b, c, d = (story(x, clock.now - timedelta(minutes=30)) for x in "abcd")
    publish(settings, a, b, c, d)
    publish(settings, corpus.next_version(a, "killed", kill_reason="Legal advice."),
            corpus.next_version(b, "corrected", correction_note="The minister's name was misspelt."),
            corpus.next_version(c, "withdrawn", kill_reason="Under review."))
    with feeds_running(settings, clock) as run:
        run.catch_up()
        titles = {e.title for e in feed(run.get("/feeds/all.rss").body).entries}
        assert titles == {b["headline"], d["headline"], f"Killed: {a['headline']}", f"Withdrawn: {c['headline']}"}
        atom = run.get("/feeds/all.atom").body
        assert {e.title for e in feed(atom).entries} == {b["headline"], d["headline"]}
        tombstones = etree.fromstring(atom).iter("{http://purl.org/atompub/tombstones/1.0}deleted-entry")
        assert sorted(article_of(t.get("ref")) for t in tombstones) == ["a", "c"]
        root = newsml(run.get("/feeds/all.newsml").body)
        assert {article_of(g): s for g, s in statuses(root).items()} == \
               {"a": "stat:canceled", "b": "stat:usable", "c": "stat:withheld", "d": "stat:usable"}
        corrected = newsml(run.get("/items/b.newsml").body)
        assert corrected.get("version") == "2"
        assert corrected.find("n:itemMeta/n:signal", N).get("qcode") == "sig:correction"
        assert "The minister's name was misspelt." in corrected.find("n:itemMeta/n:edNote", N).text
        by_id = {article_of(i["uri"]): i for i in ninjs_items(run.get("/feeds/all.json").body)}
        assert by_id["a"]["pubStatus"] == "canceled" and by_id["c"]["pubStatus"] == "withheld"
        old = {article_of(i["uri"]): i for i in ninjs_items(run.get("/feeds/all.ninjs2").body, "2.2")}
        assert old["a"]["pubstatus"] == "canceled" and old["c"]["pubstatus"] == "withheld"
        assert json.loads(run.get("/items/b.ninjs2").body)["version"] == "2"
        assert run.get("/items/a.rss").status == 410 and run.get("/items/c.atom").status == 410
        assert newsml(run.get("/items/a").body).find("n:itemMeta/n:pubStatus", N).get("qcode") == "stat:canceled"
        # an earlier version: kept for a live story, refused for a killed one
        assert newsml(run.get("/items/b?version=1").body).get("version") == "1"
        assert run.get("/items/a?version=1").status == 410
        assert run.get("/items/b?version=7").status == 404


def test_embargo_appears_at_its_time_without_a_new_event(settings):
    clock = Clock(start_of_test())
    end = clock.now + timedelta(minutes=5)
    held = story("held", clock.now - timedelta(minutes=1), embargo_until=end)
    opened = story("open", clock.now - timedelta(minutes=2))
    publish(settings, opened, held)
    with feeds_running(settings, clock) as run:
        run.catch_up()
        acme = {"Authorization": f"Bearer {ACME_TOKEN}"}
        for fmt in ("rss", "atom"):
            assert [e.title for e in feed(run.get(f"/feeds/all.{fmt}").body).entries] == [opened["headline"]]
        assert [article_of(g) for g in statuses(newsml(run.get("/feeds/all.newsml").body))] == ["open"]
        assert run.get("/items/held").status == 404
        public_changes = json.loads(run.get("/changes.json?since=0").body)
        assert [article_of(i["uri"]) for i in public_changes["items"]] == ["open"]
        # the partner sees it, marked embargoed; never in its RSS
        partner = run.get("/partners/acme/feeds/all.newsml", **acme)
        root = newsml(partner.body)
        assert [article_of(g) for g in statuses(root)] == ["held", "open"]
        assert root.find(".//n:newsItem/n:itemMeta/n:embargoed", N) is not None
        assert partner.headers["X-Embargoed-Items"] == "1" and partner.headers["Cache-Control"].startswith("private")
        assert json.loads(run.get(f"/items/held.json?token={ACME_TOKEN}").body)["embargoedUntil"]
        assert held["headline"] not in {e.title for e in feed(run.get("/partners/acme/feeds/all.rss", **acme).body).entries}

        clock.now = end  # no new event: only time passes
        assert [e.title for e in feed(run.get("/feeds/all.rss").body).entries] == [held["headline"], opened["headline"]]
        assert article_of(feed(run.get("/feeds/all.atom").body).entries[0].id) == "held"
        assert run.get("/items/held.rss").status == 200
        run.consumer.poll(100)  # the consumer lifts the embargo: a new cursor value
        later = json.loads(run.get(f"/changes.json?since={public_changes['next']}").body)
        assert [article_of(i["uri"]) for i in later["items"]] == ["held"]


def test_an_older_version_arriving_late_never_replaces_the_newer(settings):
    clock = Clock(start_of_test())
    v1 = story("late", clock.now - timedelta(minutes=9))
    v2 = corpus.next_version(v1, "updated", headline="The newer headline")
    publish(settings, v1, v2, v1)
    with feeds_running(settings, clock) as run:
        run.catch_up()
        assert newsml(run.get("/items/late").body).get("version") == "2"
        assert [e.title for e in feed(run.get("/feeds/all.rss").body).entries] == ["The newer headline"]
        assert json.loads(run.get("/health").body)["stale_events"] == 1


def test_conditional_get_and_gzip(settings):
    clock = Clock(start_of_test())
    publish(settings, story("first", clock.now - timedelta(minutes=3)))
    with feeds_running(settings, clock) as run:
        run.catch_up()
        clock.advance(seconds=2)
        for path in ("/feeds/all.rss", "/feeds/all.atom", "/feeds/all.newsml", "/feeds/all.json", "/items/first"):
            full = run.get(path)
            assert full.status == 200 and full.headers["ETag"].startswith('"')
            assert full.headers["Cache-Control"] == "public, max-age=5"
            assert run.get(path, If_None_Match=full.headers["ETag"]).status == 304
            assert run.get(path, If_Modified_Since=full.headers["Last-Modified"]).status == 304
            earlier = format_datetime(clock.now - timedelta(hours=1), usegmt=True)
            assert run.get(path, If_Modified_Since=earlier).status == 200
            zipped = run.get(path, Accept_Encoding="gzip, deflate")
            assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
            assert gzip.decompress(zipped.body) == full.body
            assert run.get(path, If_None_Match=zipped.headers["ETag"], Accept_Encoding="gzip").status == 304
            assert run.get(path, Accept_Encoding="gzip;q=0").body == full.body

        before = run.get("/feeds/all.rss")
        publish(settings, story("second", clock.now - timedelta(minutes=1)))
        run.catch_up()
        after = run.get("/feeds/all.rss", If_None_Match=before.headers["ETag"])
        assert after.status == 200 and after.headers["ETag"] != before.headers["ETag"]
        assert len(feed(after.body).entries) == 2
        # a change in the same second as the last answer gives no Last-Modified to lean on
        assert "Last-Modified" not in after.headers
        clock.advance(seconds=1)
        assert run.get("/feeds/all.rss", If_Modified_Since=before.headers["Last-Modified"]).status == 200


def test_change_cursor_never_misses_or_repeats(settings):
    clock = Clock(start_of_test())
    first = [story(f"c{i:02d}", clock.now - timedelta(minutes=60 - i)) for i in range(12)]
    publish(settings, *first)
    with feeds_running(settings, clock) as run:
        run.catch_up()
        received: list[tuple[str, int]] = []
        cursor, fmt_turn = 0, 0

        def poll_until_empty() -> None:
            nonlocal cursor, fmt_turn
            while True:
                fmt_turn += 1
                if fmt_turn % 2:
                    reply = run.get(f"/changes.json?since={cursor}&limit=5")
                    body = json.loads(reply.body)
                    got = [(article_of(i["uri"]), int(i["version"])) for i in ninjs_items(reply.body)]
                    assert body["next"] == int(reply.headers["X-Next-Cursor"])
                else:
                    reply = run.get(f"/changes.newsml?since={cursor}&limit=5")
                    if reply.status == 204:  # nothing new: a newsMessage cannot be empty
                        assert reply.body == b"" and reply.headers["X-Item-Count"] == "0"
                        cursor = int(reply.headers["X-Next-Cursor"])
                        return
                    root = newsml(reply.body)
                    got = [(article_of(i.get("guid")), int(i.get("version")))
                           for i in root.iterfind(".//n:newsItem", N)
                           if i.find("n:itemMeta/n:itemClass", N).get("qcode") == "ninat:text"]
                    transmit = root.find("n:header/n:transmitId", N).text
                    assert transmit == f"changes-{cursor}-{reply.headers['X-Next-Cursor']}"
                received.extend(got)
                cursor = int(reply.headers["X-Next-Cursor"])
                if not got:
                    return

        reply = run.get("/changes.json?since=0&limit=5")
        received += [(article_of(i["uri"]), int(i["version"])) for i in json.loads(reply.body)["items"]]
        cursor = int(reply.headers["X-Next-Cursor"])
        # meanwhile: updates of items already received and of items not yet received, and new stories
        publish(settings, corpus.next_version(first[1], "updated"), corpus.next_version(first[9], "corrected"),
                *[story(f"n{i}", clock.now) for i in range(4)])
        run.catch_up()
        poll_until_empty()
        publish(settings, corpus.next_version(first[0], "killed"), story("n9", clock.now))
        run.catch_up()
        poll_until_empty()

        assert len(received) == len(set(received)), "an item came twice in the same version"
        latest = {}
        for article, version in received:
            assert version > latest.get(article, 0), f"{article} went back to version {version}"
            latest[article] = version
        expected = {e.article_id: e.version for e in run.view.snapshot()}
        assert latest == expected and len(expected) == 17
        assert run.get(f"/changes.json?since={cursor + 1}").status == 400
        assert run.get("/changes.json?since=-1").status == 400


def test_restart_keeps_everything_and_order(settings):
    clock = Clock(start_of_test())
    events = [story(f"r{i}", clock.now - timedelta(minutes=50 - i), embargo_until=None) for i in range(8)]
    events.append(story("r-held", clock.now, embargo_until=clock.now + timedelta(hours=1)))
    publish(settings, *events)
    with feeds_running(settings, clock) as run:
        run.catch_up()
        publish(settings, corpus.next_version(events[2], "corrected"))
        run.catch_up()
        before = [(e.article_id, e.version, e.seq, e.held) for e in run.view.snapshot()]
        feed_before = run.get("/feeds/all.rss")
        changes_before = run.get("/changes.json?since=0").body
    publish(settings, story("after-restart", clock.now))
    with feeds_running(settings, clock) as run:
        assert [(e.article_id, e.version, e.seq, e.held) for e in run.view.snapshot()] == before
        again = run.get("/feeds/all.rss", If_None_Match=feed_before.headers["ETag"])
        assert again.status == 304
        assert run.get("/changes.json?since=0").body == changes_before
        run.catch_up()
        after = run.view.snapshot()
        assert [(e.article_id, e.version, e.seq) for e in after[:-1]] == [b[:3] for b in before]
        assert (after[-1].article_id, after[-1].seq) == ("after-restart", before[-1][2] + 1)
        assert run.view.stale == 0  # nothing was read twice


def test_hostile_messages_go_to_the_dead_letter_topic_and_the_consumer_goes_on(settings):
    clock = Clock(start_of_test())
    publish(settings, story("before", clock.now - timedelta(minutes=2)))
    send_raw(settings, b"junk", b"\xc3\x01not avro at all")
    bad_id = story("ok-id", clock.now) | {"article_id": "../../etc/passwd"}
    unrenderable = story("no-headline", clock.now) | {"headline": "   "}
    send_raw(settings, b"bad", codec.encode(bad_id))
    send_raw(settings, b"no-headline", codec.encode(unrenderable))
    publish(settings, story("after", clock.now - timedelta(minutes=1)))
    with feeds_running(settings, clock) as run:
        run.catch_up()
        assert {article_of(e.id) for e in feed(run.get("/feeds/all.atom").body).entries} == {"before", "after"}
        letters = dead_letters(settings)
        reasons = sorted(header(r, "dlq.reason") for r in letters)
        assert len(letters) == 3 and all(header(r, "dlq.consumer") == "feeds" for r in letters)
        assert any("undecodable" in r for r in reasons)
        assert any("article_id" in r for r in reasons) and any("headline" in r for r in reasons)


def test_partner_tokens_and_entitlements(settings, tmp_path):
    clock = Clock(start_of_test())
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps({
        "acme": {"token": ACME_TOKEN, "embargoed": True},
        "blog": {"token": BLOG_TOKEN, "feeds": ["lang-en"], "embargoed": False},
    }))
    tokens = Tokens.from_env({"NEWSWIRE_FEED_TOKENS_FILE": str(tokens_file)})
    publish(settings, story("en-open", clock.now - timedelta(minutes=3)),
            story("fr-open", clock.now - timedelta(minutes=2), language="fr"),
            story("en-held", clock.now - timedelta(minutes=1), embargo_until=clock.now + timedelta(hours=1)))
    with feeds_running(settings, clock, tokens) as run:
        run.catch_up()
        assert run.get("/partners/acme/feeds/all.json").status == 401
        assert run.get("/partners/acme/feeds/all.json", Authorization=f"Bearer {BLOG_TOKEN}").status == 401
        assert run.get("/feeds/all.json", X_Newswire_Token="wrong-token-0123456789").status == 401
        assert run.get("/partners/blog/feeds/all.json", Authorization=f"Bearer {BLOG_TOKEN}").status == 403
        blog = ninjs_items(run.get("/partners/blog/feeds/lang-en.json", Authorization=f"Bearer {BLOG_TOKEN}").body)
        assert [article_of(i["uri"]) for i in blog] == ["en-open"]
        blog_changes = json.loads(run.get(f"/partners/blog/changes.json?token={BLOG_TOKEN}").body)
        assert [article_of(i["uri"]) for i in blog_changes["items"]] == ["en-open"]
        assert run.get(f"/partners/blog/items/fr-open?token={BLOG_TOKEN}").status == 404
        acme = ninjs_items(run.get("/partners/acme/feeds/all.json", X_Newswire_Token=ACME_TOKEN).body)
        assert [(article_of(i["uri"]), "embargoedUntil" in i) for i in acme] == \
               [("en-held", True), ("fr-open", False), ("en-open", False)]
        acme_changes = json.loads(run.get("/changes.json", Authorization=f"Bearer {ACME_TOKEN}").body)
        # (in the order the view took them in: across partitions, any order)
        assert sorted(article_of(i["uri"]) for i in acme_changes["items"]) == ["en-held", "en-open", "fr-open"]


def test_feeds_serve_command_runs_consumer_and_server_and_stops_cleanly(settings):
    port = free_port()
    publish(settings, story("cli", start_of_test() - timedelta(minutes=1)))
    env = cli_env(settings) | own_groups(settings) | {"NEWSWIRE_FEED_TOKENS": f"acme:{ACME_TOKEN}"}
    process = subprocess.Popen([*NEWSWIRE, "feeds", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # until the server answers and its consumer has the story
            try:
                health = fetch(base + "/health")
                if health.status == 200 and json.loads(health.body)["articles"] == 1:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert json.loads(fetch(base + "/health").body) | {"cursor": 1} == \
               {"articles": 1, "in_memory": 1, "cursor": 1, "stale_events": 0, "consumer": "running"}
        title = json.loads(fetch(base + "/items/cli.json").body)["headlines"][0]["value"]
        assert title.startswith("cli: ")
        assert [e.title for e in feed(fetch(base + "/feeds/all.rss").body).entries] == [title]
        assert fetch(base + "/partners/acme/feeds/all.atom", {"Authorization": f"Bearer {ACME_TOKEN}"}).status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{port}/feeds/all.rss" in out


HOSTILE_INTEGERS = ["²", "٣", "３", "9" * 5000, "1" + "0" * 30, "-1", "+3", " 3", "3 ", "3.0", "0x10", "1_0", ""]


def test_every_integer_query_parameter_refuses_hostile_values_with_400_naming_it(settings):
    clock = Clock(start_of_test())
    publish(settings, story("int-1", clock.now - timedelta(minutes=2)))
    publish(settings, corpus.next_version(story("int-1", clock.now - timedelta(minutes=2)), "updated"))
    token = f"token={ACME_TOKEN}"
    endpoints = [(f"{prefix}{path}", name) for prefix in ("", "/partners/acme") for path, name in [
        ("/feeds/all.rss?limit=", "limit"), ("/feeds/all.json?limit=", "limit"),
        ("/changes.json?since=", "since"), ("/changes.newsml?since=", "since"),
        ("/changes.json?since=0&limit=", "limit"), ("/items/int-1?version=", "version"),
        ("/items/int-1.json?version=", "version")]]
    with feeds_running(settings, clock) as run:
        run.catch_up()
        for path, name in endpoints:
            for value in HOSTILE_INTEGERS:
                reply = run.get(f"{path}{quote(value)}&{token}")
                assert reply.status == 400, (path, value[:20], reply.status, reply.body[:200])
                assert json.loads(reply.body)["error"].startswith(f"{name}: must be an integer from "), reply.body
        # plain ASCII digits still work on the same routes
        assert len(ninjs_items(run.get("/feeds/all.json?limit=1").body)) == 1
        assert newsml(run.get("/items/int-1?version=1").body).get("version") == "1"
        assert run.get("/partners/acme/changes.json?since=0&limit=500&" + token).status == 200
        assert run.get("/feeds/all.rss?limit=501").status == 400
