"""A view that keeps only its window in memory answers as the view that keeps everything.

The same random history (new stories, updates that move stories up and between feeds,
corrections, kills, withdrawals, embargoes and their liftings, stale redeliveries) goes into
a view over a :class:`ViewStore` with tiny windows and into a view without a store; after every
durable batch, and after a restart from the file, every feed page, cursor page, article,
count and feed time of the two is compared.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta

import pytest

from newswire import corpus
from newswire.consumers.feeds.store import ViewStore
from newswire.consumers.feeds.view import PUBLIC, Audience, FeedView
from tests.test_feeds_view import T0, story

PARTNER = Audience(name="acme", embargoed=True)
POLITICS = Audience(name="blog", feeds=frozenset({"category-politics"}))
AUDIENCES = (PUBLIC, PARTNER, POLITICS)
CATEGORIES = ["politics", "economy", "sport", "culture"]


def small(store: ViewStore) -> FeedView:
    view = FeedView(window=3, recent=4, feeds_kept=2)
    store.load(view)
    return view


def history(rng: random.Random, steps: int):
    """(event, now) pairs: a story's versions arrive in order, some twice."""
    latest: dict[str, dict] = {}
    now = T0
    for i in range(steps):
        now += timedelta(minutes=1)
        if latest and rng.random() < 0.45:
            previous = latest[rng.choice(sorted(latest))]
            if rng.random() < 0.1:
                yield previous, now  # a redelivery: stale
                continue
            kind = rng.choice(["updated", "updated", "corrected", "killed", "withdrawn"])
            changes = {"categories": rng.sample(CATEGORIES, k=rng.randint(1, 2))} if kind == "updated" else {}
            event = corpus.next_version(previous, kind, at=previous["occurred_at"] + timedelta(minutes=rng.randint(-30, 90)),
                                        **changes)
            if kind in ("killed", "withdrawn"):
                del latest[event["article_id"]]
        else:
            embargo = {"embargo_until": now + timedelta(minutes=rng.randint(1, 20))} if rng.random() < 0.15 else {}
            event = story(f"s{i}", language=rng.choice(["en", "ar"]), categories=rng.sample(CATEGORIES, k=rng.randint(1, 2)),
                          occurred_at=now + timedelta(minutes=rng.randint(-300, 60)), **embargo)
        latest[event["article_id"]] = event
        yield event, now


def assert_same(got: FeedView, expected: FeedView, now) -> None:
    assert len(got) == len(expected)
    assert got.feeds() == expected.feeds()
    for feed in expected.feeds():
        assert got.feed_changed(feed) == expected.feed_changed(feed)
        for audience in AUDIENCES:
            for limit in (1, 5, 50):
                for dead in (True, False):
                    assert [(e.article_id, e.version, e.seq) for e in got.items(feed, now, limit=limit, audience=audience, include_dead=dead)] == \
                           [(e.article_id, e.version, e.seq) for e in expected.items(feed, now, limit=limit, audience=audience, include_dead=dead)], (feed, audience, limit)
    changed = [e.seq - 1 for e in expected.snapshot() if e.seq <= expected.durable]
    for cursor in {0, expected.durable, *changed[::3], *changed[-4:]}:  # the oldest, the newest, some between
        for audience in AUDIENCES:
            for limit in (1, 3, 100):
                assert got.changes_since(cursor, limit=limit, audience=audience) == \
                       expected.changes_since(cursor, limit=limit, audience=audience), (cursor, audience, limit)
    assert got.snapshot() == expected.snapshot()
    for entry in expected.snapshot():
        assert got.get(entry.article_id) == entry
        assert got.get(entry.article_id).event == entry.event


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_view_with_a_small_window_answers_as_one_that_keeps_everything(tmp_path, seed):
    rng = random.Random(seed)
    store = ViewStore(tmp_path / "view.sqlite3")
    view, everything = small(store), FeedView()
    everything.head = everything.durable = view.head  # the same cursor values
    offset = 0
    now = T0
    steps = list(history(rng, 160))
    for start in range(0, len(steps), 7):
        for event, now in steps[start:start + 7]:
            assert (view.apply(event, now) is None) == (everything.apply(event, now) is None)
        assert [e.article_id for e in view.release(now)] == [e.article_id for e in everything.release(now)]
        offset += 1
        changes = view.take_journal()
        store.save(changes, view, {("articles", 0): offset})
        if changes:
            view.mark_durable(changes[-1].entry.seq)
        everything.mark_durable(everything.head)
        view.items("all", now, limit=2)  # windows come and go
        view.items(rng.choice(sorted(everything.feeds())), now, limit=2)
        assert_same(view, everything, now)
        assert view.in_memory() < len(everything) or len(everything) < 12
    store.close()

    store = ViewStore(tmp_path / "view.sqlite3")
    again = small(store)
    assert again.in_memory() <= 4 + sum(e.held for e in everything.snapshot())  # the newest changes and the held ones
    assert_same(again, everything, now)
    later = now + timedelta(hours=1)
    assert [e.article_id for e in again.release(later)] == [e.article_id for e in everything.release(later)]
    store.close()


def test_a_file_of_an_older_store_is_upgraded_at_open(tmp_path):
    """A view file written before the articles had their event ids and before the feed items (and
    feed counts) were on disk gets them when it is opened, with what the view needs answered as before."""
    path = tmp_path / "view.sqlite3"
    store = ViewStore(path)
    view = small(store)
    for i in range(6):
        view.apply(story(f"a{i}", i, categories=[CATEGORIES[i % 3]]), T0)
    changes = view.take_journal()
    store.save(changes, view, {})
    store.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE feed_items; ALTER TABLE articles DROP COLUMN event_id;"
                     " CREATE TABLE old_feeds AS SELECT name, changed_us FROM feeds; DROP TABLE feeds;"
                     " ALTER TABLE old_feeds RENAME TO feeds;")
    db.close()

    store = ViewStore(path)
    again = small(store)
    assert again.feeds() == {"all": 6, "category-economy": 2, "category-politics": 2, "category-sport": 2, "lang-en": 6}
    assert [e.article_id for e in again.items("all", T0, limit=10)] == [f"a{i}" for i in reversed(range(6))]
    assert [e.event_id for e in again.snapshot()] == [c.entry.event_id for c in changes]
    store.close()
