"""One event that cannot be rendered never takes a feed or newsMessage down with it: it is left
out with its reason logged (``item_left_out``), and the feeds consumer sends it to the dead
letters on the way in (check_renders). Pure: the renderers and the check, called directly."""

from __future__ import annotations

import asyncio
import copy
import json

import feedparser
import pytest
from lxml import etree
from structlog.testing import capture_logs

from aiohttp.test_utils import TestClient, TestServer

from newswire.consumers.feeds.consumer import check_renders
from newswire.consumers.feeds.server import FeedServer
from newswire.consumers.feeds.view import FeedView
from newswire.formats import atom, newsml, ninjs, prepare, rss
from tests.corpus_cases import NOW, cases
from tests.official_schemas import newsml_schema, ninjs_validator

N = "{http://iptc.org/std/nar/2006-10-01/}"
_CASES = cases()


def good_and_bad() -> tuple[list[dict], dict]:
    """A plain story, an event whose headline is missing (cannot be rendered), the fixture."""
    bad = copy.deepcopy(_CASES["pictures"])
    bad["headline"] = " \t\u2028 "
    return [_CASES["plain"], bad, _CASES["fixture"]], bad


def left_out(logged: list[dict]) -> list[dict]:
    return [entry for entry in logged if entry["event"] == "item_left_out"]


def test_news_message_leaves_the_bad_item_out_and_stays_valid():
    events, bad = good_and_bad()
    with capture_logs() as logged:
        message = etree.fromstring(newsml.news_message(events, sent=NOW))
    newsml_schema().assertValid(message)
    guids = [item.get("guid") for item in message.iter(f"{N}newsItem")]
    assert prepare(events[0]).uri in guids and prepare(events[2]).uri in guids
    assert not any(bad["article_id"] in guid for guid in guids)
    [entry] = left_out(logged)
    assert entry["article_id"] == bad["article_id"] and entry["format"] == "newsml"
    assert entry["reason"] == "headline: missing or empty"


def test_a_news_message_with_no_renderable_item_is_refused_with_the_reason():
    _, bad = good_and_bad()
    with pytest.raises(ValueError, match="headline: missing or empty"):  # what a webhook dead-letters
        newsml.news_message([bad], sent=NOW)
    with pytest.raises(ValueError, match="none of the 0 items"):
        newsml.news_message([], sent=NOW)


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_rss_and_atom_feeds_leave_the_bad_item_out(fmt):
    events, bad = good_and_bad()
    render = {"rss": lambda: rss.feed(events, title="t", link="https://x.example/", self_url="https://x.example/f",
                                      description="d", updated=NOW),
              "atom": lambda: atom.feed(events, title="t", link="https://x.example/", self_url="https://x.example/f",
                                        feed_id="https://x.example/f", updated=NOW)}[fmt]
    with capture_logs() as logged:
        parsed = feedparser.parse(render())
    assert not parsed.bozo
    assert [e.title for e in parsed.entries] == [prepare(events[0]).headline, prepare(events[2]).headline]
    assert [e["article_id"] for e in left_out(logged)] == [bad["article_id"]]


def test_ninjs_items_leave_the_bad_item_out():
    events, bad = good_and_bad()
    with capture_logs() as logged:
        objects = ninjs.items(events)
    assert [o["uri"] for o in objects] == [prepare(events[0]).uri, prepare(events[2]).uri]
    for obj in objects:
        ninjs_validator().validate(json.loads(ninjs.dumps(obj)))
    assert [e["format"] for e in left_out(logged)] == ["ninjs"]


def test_the_feeds_consumer_refuses_what_it_could_not_render():
    _, bad = good_and_bad()
    with pytest.raises(ValueError, match="headline: missing or empty"):
        check_renders(bad)
    check_renders(_CASES["fixture"])  # a good one passes


def test_the_feed_server_serves_the_feeds_of_a_view_holding_a_bad_event():
    """Wherever it came from (an older consumer, a restored view), a bad event in the view is
    left out of every feed and change list; the others are served."""
    events, bad = good_and_bad()
    view = FeedView()
    for event in events:
        view.apply(event, NOW)
    view.mark_durable(view.head)

    async def fetch_all() -> dict[str, tuple[int, bytes]]:
        async with TestClient(TestServer(FeedServer(view, clock=lambda: NOW).app())) as client:
            answers = {}
            for path in ("/feeds/all.newsml", "/feeds/all.json", "/feeds/all.rss", "/feeds/all.atom",
                         "/changes.newsml?since=0", "/changes.json?since=0"):
                response = await client.get(path)
                answers[path] = (response.status, await response.read())
            return answers

    with capture_logs() as logged:
        answers = asyncio.run(fetch_all())
    assert {status for status, _ in answers.values()} == {200}
    good = {prepare(events[0]).uri, prepare(events[2]).uri}
    for path in ("/feeds/all.newsml", "/changes.newsml?since=0"):
        message = etree.fromstring(answers[path][1])
        newsml_schema().assertValid(message)
        texts = {item.get("guid") for item in message.iter(f"{N}newsItem")
                 if item.find(f"{N}itemMeta/{N}itemClass").get("qcode") == "ninat:text"}
        assert texts == good
    for path in ("/feeds/all.json", "/changes.json?since=0"):
        assert {item["uri"] for item in json.loads(answers[path][1])["items"]} == good
    for path in ("/feeds/all.rss", "/feeds/all.atom"):
        assert len(feedparser.parse(answers[path][1]).entries) == 2
    assert {e["article_id"] for e in left_out(logged)} == {bad["article_id"]}
