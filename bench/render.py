"""Renderer throughput: items/s of every format on the fixture story and on a generated corpus,
and feedgen (the common Python RSS/Atom library) on the same 100 items in the same run.

Run: ``.venv/bin/python -m bench.render [--corpus 2000] [--repeat 300] [--rounds 10]``. Prints
figures only. Each feed row's feedgen figure is timed in turn with it (best of ``--rounds``
each), so that a busy spell of a shared machine weighs on both sides of the ratio.
Our renderers re-clean every event that bypassed the producer (``clean_text`` on each field,
nh3 on the body: see newswire.formats.prepare); a "sealed" event is one whose cleaning seal
verified (newswire.seal: the producer cleaned it; what a consumer reads from newswire's own
producer), checked but not cleaned again. feedgen is handed the already clean fields, so the
sealed rows are the like-for-like ratio and the others include the insurance. The ``prepare``
row shows what it costs on its own. "cold" figures
empty the memo of sanitised bodies before every render (a story seen for the first time);
"warm" ones keep it (a feed rendering the same newest items again). The "kept" rows are what
the feed server does (newswire.formats.kept): each item rendered once and kept, the feed
assembled from the kept bytes; "first" renders every item (a new cache each round), "again"
assembles the same feed from a warm cache (a new channel, so the envelope is made anew).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from typing import Callable, Sequence

from feedgen.feed import FeedGenerator

from bench.harness import peak_rss_mib, percentile, print_table
from newswire import corpus, seal
from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, atom, forget_bodies, newsml, ninjs, prepare, registry, rss
from newswire.formats.kept import Renders
from newswire.sanitize import word_count
from tests.corpus_cases import fixture_story

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
FEED = {"title": "All stories", "link": "https://news.example.org/"}

SINGLE: dict[str, Callable[[ArticleEvent], object]] = {
    "prepare (clean + sanitise)": prepare,
    "NewsML-G2 text item": newsml.news_item_bytes,
    "NewsML-G2 picture items": newsml.picture_item_bytes,
    "ninjs item": lambda event: ninjs.dumps(ninjs.item(event)),
    "RSS item": rss.item_bytes,
    "Atom entry": lambda event: registry.FORMATS["atom"].assembly.fragment(event, EXAMPLE_AUTHORITY),
}


def sealed(events: Sequence[ArticleEvent]) -> list[ArticleEvent]:
    """``events`` as a consumer has them when their cleaning seal verified (newswire.seal), with
    their bodies' word counts as the producer counts them (the generated ones are not)."""
    return [seal.mark_verified({**event, "word_count": word_count(event["body"])}) for event in events]


def per_item(render: Callable[[ArticleEvent], object], events: Sequence[ArticleEvent]) -> tuple[float, list[float]]:
    """(items/s, per-item latencies in ms) of ``render`` over ``events``, each cold."""
    latencies = []
    for event in events:
        forget_bodies()
        start = time.perf_counter()
        render(event)
        latencies.append((time.perf_counter() - start) * 1000)
    return len(events) / (sum(latencies) / 1000), latencies


def timed(work: Callable[[], object], rounds: int, *, cold: bool = True) -> float:
    """Seconds per call of ``work`` (best of ``rounds``), with an empty body memo if ``cold``."""
    best = float("inf")
    for _ in range(rounds):
        if cold:
            forget_bodies()
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def ours_rss(events: Sequence[ArticleEvent]) -> bytes:
    return rss.feed(events, self_url="https://feeds.example.org/all.rss", description="Every story",
                    updated=NOW, **FEED)


def ours_atom(events: Sequence[ArticleEvent]) -> bytes:
    return atom.feed(events, self_url="https://feeds.example.org/all.atom", feed_id="tag:example.org,2026:all",
                     updated=NOW, **FEED)


def paired(ours: Callable[[], object], peer: Callable[[], object], rounds: int, *,
           cold: bool = True) -> tuple[float, float]:
    """Seconds per call of ``ours`` and of ``peer`` (best of ``rounds`` each), timed in turn, so
    that a busy spell of the shared machine falls on both."""
    mine = theirs = float("inf")
    for _ in range(rounds):
        theirs = min(theirs, timed(peer, 1, cold=False))  # the peer keeps no memo: ours is left as it is
        mine = min(mine, timed(ours, 1, cold=cold))
    return mine, theirs


def kept_feed(name: str, events: Sequence[ArticleEvent], renders: Renders) -> bytes:
    """The feed as the feed server makes it: assembled from kept item bytes."""
    channel = registry.Channel(updated=NOW, self_url=f"https://feeds.example.org/all.{name}", description="Every story",
                               feed_id="tag:example.org,2026:all", **FEED)
    return renders.feed(events, registry.FORMATS[name], channel)


def feedgen_feed(events: Sequence[ArticleEvent], atom_feed: bool) -> bytes:
    """The same items, fields and extensions with feedgen (given the already clean fields)."""
    fg = FeedGenerator()
    fg.load_extension("media")
    fg.id("tag:example.org,2026:all")
    fg.title(FEED["title"])
    fg.link(href=FEED["link"], rel="alternate")
    fg.link(href="https://feeds.example.org/all." + ("atom" if atom_feed else "rss"), rel="self")
    fg.description("Every story")
    fg.updated(NOW)
    for event in events:
        entry = fg.add_entry(order="append")
        entry.id(event["article_id"])
        entry.guid(event["article_id"], permalink=False)
        entry.title(event["headline"])
        if event["canonical_url"]:
            entry.link(href=event["canonical_url"])
        entry.published(event["first_created"])
        entry.updated(event["occurred_at"])
        for byline in event["bylines"]:
            entry.author(name=byline["name"], email="desk@example.org")
        if event["summary"]:
            entry.description(event["summary"]) if not atom_feed else entry.summary(event["summary"])
        entry.content(event["body"], type="xhtml" if atom_feed else "CDATA")
        for category in event["categories"]:
            entry.category(term=category)
        for image in event["images"]:
            entry.media.content(url=image["url"], type=image["media_type"], medium="image",
                                width=str(image["width"]), height=str(image["height"]))
    return fg.atom_str() if atom_feed else fg.rss_str()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=int, default=2000, help="generated events")
    parser.add_argument("--repeat", type=int, default=300, help="renders of the fixture story")
    parser.add_argument("--rounds", type=int, default=10,
                        help="timings of each feed and of feedgen's beside it (the best of each is shown)")
    args = parser.parse_args()

    fixture = fixture_story()
    generated = list(corpus.stream(args.corpus, seed=11))
    rows = []
    for name, render in SINGLE.items():
        for label, events in (("fixture", [fixture] * args.repeat), ("fixture, sealed", sealed([fixture]) * args.repeat),
                              (f"corpus of {len(generated)}", generated),
                              (f"corpus of {len(generated)}, sealed", sealed(generated))):
            rate, latencies = per_item(render, events)
            rows.append((f"{name}, {label}, cold", f"{rate:,.0f} items/s",
                         f"p50 {percentile(latencies, 50):.2f} ms, p99 {percentile(latencies, 99):.2f} ms"))
    batch = generated[:100]
    for cold in (True, False):
        message = timed(lambda: newsml.news_message(batch, sent=NOW), 5, cold=cold)
        rows.append((f"NewsML-G2 newsMessage of 100 items, {'cold' if cold else 'warm'}",
                     f"{100 / message:,.0f} items/s", f"{message * 1000:.1f} ms/message"))
    print_table("Renderers (pure functions, one core)", rows)

    live = [e for e in generated if e["event_type"] not in ("killed", "withdrawn")][:100]
    live_sealed = sealed(live)
    rows = []
    warm = Renders()
    for label, name, ours, theirs in (("RSS 2.0", "rss", ours_rss, lambda: feedgen_feed(live, False)),
                                      ("Atom 1.0", "atom", ours_atom, lambda: feedgen_feed(live, True))):
        kept_feed(name, live, warm)
        runs = [(f"{'cold' if cold else 'warm'}", lambda: ours(live), cold) for cold in (True, False)]
        runs += [(f"sealed, {'cold' if cold else 'warm'}", lambda: ours(live_sealed), cold) for cold in (True, False)]
        runs += [("kept, first render", lambda: kept_feed(name, live, Renders()), True),
                 ("kept, first render, sealed", lambda: kept_feed(name, live_sealed, Renders()), True),
                 ("kept, again", lambda: kept_feed(name, live, warm), True)]
        for how, work, cold in runs:
            mine, peer = paired(work, theirs, args.rounds, cold=cold)
            rows.append((f"{label} feed of 100 items, newswire, {how}",
                         f"{100 / mine:,.0f} items/s ({mine * 1000:.1f} ms)",
                         f"feedgen {100 / peer:,.0f} items/s ({peer * 1000:.1f} ms); "
                         f"newswire/feedgen = {peer / mine:.2f}x"))
    rows.append(("peak memory", f"{peak_rss_mib():.0f} MiB", "whole run"))
    print_table("Feeds vs feedgen (same 100 items, same run)", rows)


if __name__ == "__main__":
    main()
