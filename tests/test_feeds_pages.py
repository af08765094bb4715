"""The feed server's pages for people (``/``, ``/feeds/{feed}.html``) through the real broker
and real HTTP, and in a real headless Chromium; the feeds' own bytes stay as readers get them."""

from __future__ import annotations

from datetime import timedelta

import feedparser
import lxml.html
import pytest
from playwright.sync_api import expect, sync_playwright

from newswire import corpus
from newswire.consumers.feeds.server import FeedServer, Options
from newswire.formats import rss as rss_format
from tests.feeds_support import Clock, feeds_running, publish, start_of_test, story
from tests.http_server import serving
from tests.test_status_page import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.broker
#: what the test server's options call itself in links (tests.feeds_support)
LINKED_BASE = "https://feeds.example.org"


@pytest.fixture
def published(settings):
    clock = Clock(start_of_test())
    events = [story("pg-en", clock.now - timedelta(minutes=9), categories=["pagetest"]),
              story("pg-ar", clock.now - timedelta(minutes=8), language="ar", headline="محادثات في أنقرة"),
              story("pg-hostile", clock.now - timedelta(minutes=7), headline="<script>alert(1)</script> & co"),
              story("pg-held", clock.now - timedelta(minutes=6), embargo_until=clock.now + timedelta(hours=1))]
    doomed = story("pg-killed", clock.now - timedelta(minutes=5))
    publish(settings, *events, doomed, corpus.next_version(doomed, "killed", kill_reason="Legal."))
    return settings, clock


def test_index_lists_every_feed_with_links_that_answer(published):
    settings, clock = published
    with feeds_running(settings, clock) as run:
        run.catch_up()
        reply = run.get("/")
        assert reply.status == 200 and reply.headers["Content-Type"] == "text/html; charset=utf-8"
        page = lxml.html.fromstring(reply.body)
        listed = [a.text for a in page.xpath('//table[@id="feeds"]/tbody/tr/td[1]/a')]
        assert listed == sorted(run.view.feeds()) and "all" in listed and "lang-ar" in listed
        links = {a.get("href") for a in page.xpath('//a[@href]')}
        for feed in listed:
            for suffix in ("html", "rss", "atom", "newsml", "json"):
                assert f"{LINKED_BASE}/feeds/{feed}.{suffix}" in links
        for href in sorted(links):  # every link on the page answers
            answer = run.get(href.removeprefix(LINKED_BASE))
            assert answer.status in (200, 204), (href, answer.status)
        # feed readers and browsers discover the subscription from the page
        alternates = {(el.get("type"), el.get("href")) for el in page.xpath('//link[@rel="alternate"]')}
        assert ("application/rss+xml", f"{LINKED_BASE}/feeds/all.rss") in alternates
        again = run.get("/", If_None_Match=reply.headers["ETag"])
        assert again.status == 304


def test_feed_page_shows_what_rss_shows_escaped_and_in_its_direction(published):
    settings, clock = published
    with feeds_running(settings, clock) as run:
        run.catch_up()
        rss = feedparser.parse(run.get("/feeds/all.rss").body)
        reply = run.get("/feeds/all.html")
        assert reply.status == 200
        page = lxml.html.fromstring(reply.body)
        headlines = [h.text_content() for h in page.xpath('//article/h2')]
        live = [e.title for e in rss.entries if not e.title.startswith(("Killed: ", "Withdrawn: "))]
        assert len(live) < len(rss.entries)  # RSS carries the kill as a notice on its guid; the page leaves it out
        # the same live stories, in the same order (RSS titles drop tag-like text; the page escapes it)
        assert [rss_format.plain(h) or h for h in headlines] == live
        assert not any("pg-held" in h or "pg-killed" in h for h in headlines)  # embargoed, killed: not shown
        assert "<script>alert(1)</script> & co" in headlines  # shown as text ...
        assert not page.xpath('//article//script') and b"<script>alert" not in reply.body  # ... never as markup
        (arabic,) = [a for a in page.xpath('//article') if "محادثات" in a.text_content()]
        assert (arabic.get("lang"), arabic.get("dir")) == ("ar", "rtl")
        item_links = [a.get("href") for a in page.xpath('//article/div[contains(@class, "formats")]/a')]
        assert f"{LINKED_BASE}/items/pg-en.newsml" in item_links
        assert run.get("/items/pg-en.newsml").status == 200
        assert run.get("/feeds/nope.html").status == 404


def test_feeds_bytes_are_unchanged_whoever_asks(published):
    """No xml-stylesheet instruction, no negotiation: a browser's Accept gets the reader's bytes."""
    settings, clock = published
    with feeds_running(settings, clock) as run:
        run.catch_up()
        for path in ("/feeds/all.rss", "/feeds/all.atom"):
            reader = run.get(path, Accept="application/rss+xml, application/atom+xml")
            browser = run.get(path, Accept="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
            assert reader.body == browser.body and reader.headers["ETag"] == browser.headers["ETag"]
            assert reader.headers["Content-Type"] == browser.headers["Content-Type"]
            assert b"<?xml-stylesheet" not in reader.body
            assert feedparser.parse(reader.body).bozo == 0


def test_a_person_reads_the_feeds_in_chromium(published):
    settings, clock = published
    with feeds_running(settings, clock) as run:
        run.catch_up()
        # links to the server's own address (no base URL set), so that the browser follows them here
        own = FeedServer(run.view, store=run.store, clock=clock, options=Options())
        with serving(own.app()) as base, sync_playwright() as pw:
            browse(pw, base)


def browse(pw, base: str) -> None:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page()
        page.goto(base + "/")
        expect(page.locator("h1")).to_have_text("newswire")
        page.locator("#feeds a", has_text="category-pagetest").first.click()
        expect(page.locator("h1")).to_have_text("newswire: category-pagetest")
        expect(page.locator("article h2")).to_have_count(1)
        expect(page.locator("article h2")).to_contain_text("pg-en")
        page.get_by_role("link", name="all feeds").click()
        expect(page.locator("#feeds tbody tr")).not_to_have_count(0)
    finally:
        browser.close()
