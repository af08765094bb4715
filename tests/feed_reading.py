"""Feeds of test events as a feed reader gets them (RSS 2.0 and Atom 1.0), read back by feedparser."""

from __future__ import annotations

import feedparser

from newswire.formats import atom, rss
from tests.corpus_cases import NOW


def rss_feed(events) -> bytes:
    return rss.feed(events, title="All stories", link="https://news.example.org/",
                    self_url="https://feeds.example.org/feeds/all.rss", description="Every story", updated=NOW)


def atom_feed(events) -> bytes:
    return atom.feed(events, title="All stories", link="https://news.example.org/",
                     self_url="https://feeds.example.org/feeds/all.atom",
                     feed_id="tag:newswire.example.org,2026:feeds/all", updated=NOW)


def read(document: bytes):
    """feedparser's reading of ``document``, which must parse without complaint (``bozo == 0``)."""
    parsed = feedparser.parse(document)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed
