"""The feed view and its SQLite store, without a broker."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from newswire import codec, corpus
from newswire.consumers.feeds.store import ViewStore
from newswire.consumers.feeds.view import PUBLIC, Audience, FeedView, feeds_of

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
PARTNER = Audience(name="acme", embargoed=True)


def story(article_id: str, minute: int = 0, **changes):
    event = corpus.story(random.Random(article_id), article_id, language="en",
                         occurred_at=T0 + timedelta(minutes=minute), body_bytes=300, images=1)
    event.update({"categories": ["politics"], **changes})
    return event


def ids(entries) -> list[str]:
    return [e.article_id for e in entries]


def durable(view: FeedView) -> FeedView:
    view.mark_durable(view.head)
    return view


def drain(view: FeedView, cursor: int, limit: int, audience: Audience = PUBLIC) -> tuple[list[tuple[str, int]], int]:
    """Poll the change cursor until it is exhausted; every (article, version) received, in order."""
    seen = []
    while True:
        entries, cursor = view.changes_since(cursor, limit=limit, audience=audience)
        seen += [(e.article_id, e.version) for e in entries]
        if not entries:
            return seen, cursor


def test_newest_first_per_feed_with_feed_names():
    view = FeedView()
    view.apply(story("a", 1), T0)
    view.apply(story("b", 2, language="ar", categories=["Middle East", "conflict"]), T0)
    view.apply(story("c", 3), T0)
    assert feeds_of(view.get("b").event) == ("all", "lang-ar", "category-middle-east", "category-conflict")
    assert ids(view.items("all", T0, limit=10)) == ["c", "b", "a"]
    assert ids(view.items("all", T0, limit=2)) == ["c", "b"]
    assert ids(view.items("lang-en", T0, limit=10)) == ["c", "a"]
    assert ids(view.items("category-middle-east", T0, limit=10)) == ["b"]
    assert view.feeds() == {"all": 3, "category-conflict": 1, "category-middle-east": 1,
                            "category-politics": 2, "lang-ar": 1, "lang-en": 2}


def test_an_older_version_never_replaces_a_newer_one_and_is_counted():
    view = FeedView()
    v1 = story("a")
    v2 = corpus.next_version(v1, "updated", headline="Second take")
    assert view.apply(v2, T0) is not None
    assert view.apply(v1, T0) is None
    assert view.apply(v2, T0) is None  # a redelivery is stale too
    assert view.get("a").event["headline"] == "Second take"
    assert view.stale == 2
    assert view.head == 1


def test_an_update_moves_the_story_up_and_between_category_feeds():
    view = FeedView()
    a = story("a", 1)
    view.apply(a, T0)
    view.apply(story("b", 2), T0)
    view.apply(corpus.next_version(a, "updated", at=T0 + timedelta(minutes=9), categories=["economy"]), T0)
    assert ids(view.items("all", T0, limit=10)) == ["a", "b"]
    assert ids(view.items("category-politics", T0, limit=10)) == ["b"]
    assert ids(view.items("category-economy", T0, limit=10)) == ["a"]


def test_kills_and_withdrawals_leave_rss_atom_but_stay_for_wire_formats():
    view = FeedView()
    a, b = story("a", 1), story("b", 2)
    view.apply(a, T0)
    view.apply(b, T0)
    view.apply(corpus.next_version(a, "killed"), T0)
    view.apply(corpus.next_version(b, "withdrawn"), T0)
    assert view.items("all", T0, limit=10, include_dead=False) == []
    wire = view.items("all", T0, limit=10)
    assert [(e.article_id, e.event["event_type"]) for e in wire] == [("b", "withdrawn"), ("a", "killed")]


def test_embargo_enters_the_public_feed_at_its_time_without_a_new_event():
    view = FeedView()
    view.apply(story("open", 1), T0)
    view.apply(story("held", 2, embargo_until=T0 + timedelta(hours=1)), T0)
    before, after = T0 + timedelta(minutes=59), T0 + timedelta(hours=1)
    assert ids(view.items("all", before, limit=10)) == ["open"]
    assert ids(view.items("all", before, limit=10, audience=PARTNER)) == ["held", "open"]
    assert view.get("held").embargoed(before)
    assert ids(view.items("all", after, limit=10)) == ["held", "open"]
    assert not view.get("held").embargoed(after)


def test_change_cursor_pages_without_missing_or_repeating():
    view = durable(FeedView())
    events = {f"s{i}": story(f"s{i}", i) for i in range(7)}
    for event in events.values():
        view.apply(event, T0)
    durable(view)
    first, cursor = view.changes_since(0, limit=3)
    assert [e.article_id for e in first] == ["s0", "s1", "s2"]
    # s1 (already received) and s5 (not yet) change while the poller is between pages
    view.apply(corpus.next_version(events["s1"], "corrected"), T0)
    view.apply(corpus.next_version(events["s5"], "updated"), T0)
    durable(view)
    rest, cursor = drain(view, cursor, 2)
    assert rest == [("s3", 1), ("s4", 1), ("s6", 1), ("s1", 2), ("s5", 2)]
    assert view.changes_since(cursor, limit=5) == ([], cursor)


def test_only_durable_changes_are_handed_out():
    view = FeedView()
    view.apply(story("a"), T0)
    assert view.changes_since(0, limit=10) == ([], 0)
    with pytest.raises(ValueError, match="since: cursor 1"):
        view.changes_since(1, limit=10)
    view.mark_durable(view.head)
    assert ids(view.changes_since(0, limit=10)[0]) == ["a"]


def test_a_held_embargo_reaches_a_poller_whose_cursor_passed_it():
    view = FeedView()
    end = T0 + timedelta(minutes=30)
    view.apply(story("held", 0, embargo_until=end), T0)
    view.apply(story("open", 1), T0)
    durable(view)
    seen, cursor = drain(view, 0, 10)
    assert seen == [("open", 1)]
    partner_seen, partner_cursor = drain(view, 0, 10, PARTNER)
    assert partner_seen == [("held", 1), ("open", 1)]
    assert view.release(end - timedelta(seconds=1)) == []
    assert ids(view.release(end)) == ["held"]
    assert drain(view, cursor, 10)[0] == []  # not durable yet
    durable(view)
    later, cursor = drain(view, cursor, 10)
    assert later == [("held", 1)]
    # the partner hears of the lifting too: same version, no longer held
    assert drain(view, partner_cursor, 10, PARTNER)[0] == [("held", 1)]
    assert not view.get("held").held
    assert view.get("held").changed_at == end
    assert view.release(end + timedelta(hours=1)) == []


def test_a_superseded_embargo_is_not_lifted_twice():
    view = FeedView()
    v1 = story("a", embargo_until=T0 + timedelta(minutes=10))
    view.apply(v1, T0)
    view.apply(corpus.next_version(v1, "updated", embargo_until=T0 + timedelta(minutes=20)), T0)
    assert view.release(T0 + timedelta(minutes=15)) == []
    assert [e.version for e in view.release(T0 + timedelta(minutes=20))] == [2]


@pytest.mark.parametrize("field, value, message", [
    ("article_id", "../etc", "article_id"),
    ("article_id", "", "article_id"),
    ("version", 0, "version"),
    ("event_type", "exploded", "event_type"),
    ("occurred_at", datetime(2026, 1, 1), "occurred_at"),
    ("language", "", "language"),
])
def test_unusable_events_are_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        FeedView().apply(story("a") | {field: value}, T0)


def test_store_round_trip_keeps_everything_and_order(tmp_path):
    view = FeedView()
    a = story("a", 1)
    view.apply(a, T0)
    view.apply(story("b", 2, language="he"), T0)
    view.apply(story("c", 3, embargo_until=T0 + timedelta(hours=2)), T0)
    view.apply(corpus.next_version(a, "killed"), T0)
    view.apply(a, T0)  # stale
    store = ViewStore(tmp_path / "view.sqlite3")
    changes = view.take_journal()
    store.save(changes, view, {("articles", 0): 42})
    view.mark_durable(changes[-1].entry.seq)
    store.close()

    store = ViewStore(tmp_path / "view.sqlite3")
    again = FeedView()
    assert store.load(again) == 3
    assert store.positions("articles") == {0: 42}
    assert [(e.article_id, e.version, e.seq, e.held) for e in again.snapshot()] == \
           [(e.article_id, e.version, e.seq, e.held) for e in view.snapshot()]
    for feed in view.feeds():
        assert ids(again.items(feed, T0, limit=10, audience=PARTNER)) == ids(view.items(feed, T0, limit=10, audience=PARTNER))
        assert again.feed_changed(feed) == view.feed_changed(feed)
    assert (again.head, again.durable, again.stale) == (view.head, view.head, 1)
    assert again.changes_since(0, limit=10) == view.changes_since(0, limit=10)
    assert store.versions("a") == [1, 2]
    assert store.version("a", 1)["headline"] == a["headline"]
    assert [e.article_id for e in again.release(T0 + timedelta(hours=2))] == ["c"]


def test_the_store_remembers_where_each_partition_stood_before_the_last_save_that_moved_it(tmp_path):
    """What a crash between a save and its commit leaves as the group's committed offset: the
    feeds consumer tells that from a group reset by it (consumers/feeds/consumer.py)."""
    view, store = FeedView(), ViewStore(tmp_path / "view.sqlite3")
    store.save([], view, {("articles", 0): 10, ("articles", 1): 5})
    assert store.previous_positions("articles") == {}
    store.save([], view, {("articles", 0): 25, ("articles", 1): 5})  # partition 1 did not move
    store.save([], view, {("articles", 0): 25, ("articles", 1): 5})
    assert store.positions("articles") == {0: 25, 1: 5}
    assert store.previous_positions("articles") == {0: 10}
    store.close()


def test_the_payload_read_from_kafka_is_kept_as_is_even_in_an_older_schema():
    event = story("a")
    del event["content_warning"]  # not in v1
    payload = codec.encode(event, codec.schema_version(1))
    view = FeedView()
    view.apply(codec.decode(payload), T0, payload=payload)
    assert view.get("a").payload == payload
    assert view.get("a").event["headline"] == event["headline"]
    view.apply(story("b"), T0)
    assert codec.decode(view.get("b").payload)["article_id"] == "b"


def test_a_new_store_starts_its_cursor_above_every_earlier_one(tmp_path):
    first = FeedView()
    store = ViewStore(tmp_path / "one.sqlite3")
    store.load(first)
    first.apply(story("a"), T0)
    changes = first.take_journal()
    store.save(changes, first, {})
    first.mark_durable(changes[-1].entry.seq)
    store.close()
    old_cursor = first.changes_since(0, limit=10)[1]
    (tmp_path / "one.sqlite3").unlink()

    rebuilt = FeedView()
    ViewStore(tmp_path / "one.sqlite3").load(rebuilt)  # as after deleting the file
    rebuilt.apply(story("a"), T0)
    rebuilt.mark_durable(rebuilt.head)
    assert rebuilt.head > old_cursor
    assert ids(rebuilt.changes_since(old_cursor, limit=10)[0]) == ["a"]
