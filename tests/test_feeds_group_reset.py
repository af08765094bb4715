"""``newswire replay --group`` of the feeds consumer's group: the consumer re-reads what the
reset said it would (real broker, the real consumer and feed server)."""

from __future__ import annotations

import contextlib
import json
import uuid

from newswire.consumers.feeds.consumer import FeedsConsumer, open_view
from newswire.consumers.feeds.server import FeedServer, Options
from tests.feeds_support import Clock, fetch, publish, start_of_test, story
from tests.http_server import serving
from tests.webhooks_support import cli


@contextlib.contextmanager
def _feeds(settings, clock, group):
    """The stored view, its consumer (of ``group``) caught up with the topic, and its server."""
    view, store = open_view(settings)
    consumer = FeedsConsumer(settings, view, store, clock=clock, group_id=group)
    try:
        for _ in range(400):
            consumer.poll(200)
            if consumer.caught_up():
                break
        else:
            raise AssertionError("the feeds consumer did not catch up with the topic")
        with serving(FeedServer(view, store=store, clock=clock, options=Options(max_age=5)).app()) as base:
            yield consumer, base
    finally:
        consumer.stop()
        store.close()


def _changed_since(base: str, cursor: int) -> list[str]:
    reply = fetch(f"{base}/changes.json?since={cursor}&limit=100")
    assert reply.status == 200, reply.body
    return sorted(item["uri"] for item in json.loads(reply.body)["items"])


def test_a_reset_of_the_feeds_group_re_reads_what_it_said_and_the_changes_show_it_again(settings):
    clock = Clock(start_of_test())
    group = f"newswire-feeds-{uuid.uuid4().hex[:8]}"
    now = clock()
    stories = [story(f"gr-{n}", now) for n in range(12)]
    publish(settings, *stories)
    with _feeds(settings, clock, group) as (consumer, base):
        first = _changed_since(base, 0)
        cursor = consumer.view.durable
    assert len(first) == 12 and consumer.reread == 0

    with _feeds(settings, clock, group) as (consumer, base):  # a plain restart re-reads nothing
        assert consumer.reread == 0 and _changed_since(base, cursor) == []

    reset = cli(settings, "replay", "--group", group, "--since", "1d", "--execute")
    assert f"group {group} reset: its consumers will re-read 12 events" in reset.output
    with _feeds(settings, clock, group) as (consumer, base):
        assert consumer.reread == 12  # what the reset said
        assert _changed_since(base, cursor) == first  # every story comes again, with a new cursor
        again = consumer.view.durable
    with _feeds(settings, clock, group) as (consumer, base):  # and only once
        assert consumer.reread == 0 and _changed_since(base, again) == []
