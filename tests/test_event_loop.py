"""The consume loop every consumer runs, against the real broker: order, commits, dead letters."""

from __future__ import annotations

import random

from kafka.errors import CommitFailedError, KafkaConnectionError, RebalanceInProgressError, UnknownMemberIdError
from prometheus_client import REGISTRY

from newswire import bus, codec, corpus
from newswire.bus import EventLoop, header
from tests.topic_reader import dead_letters, drain


def test_events_arrive_in_article_order_and_offsets_are_committed(settings):
    rng = random.Random(3)
    first = corpus.story(rng, "loop-1")
    versions = [first]
    for _ in range(4):
        versions.append(corpus.next_version(versions[-1], "updated"))
    kafka = bus.producer(settings)
    bus.publish_events(settings, kafka, versions)
    kafka.close()

    seen: list[int] = []
    loop = EventLoop(settings, "test-order", lambda d: seen.append(d.event["version"]))
    drain(loop, len(versions))
    committed = {tp: loop.consumer.committed(tp) for tp in loop.consumer.assignment()}
    lags = {tp.partition: REGISTRY.get_sample_value(
        "newswire_consumer_lag", {"consumer": "test-order", "topic": tp.topic, "partition": str(tp.partition)})
        for tp in committed}
    loop.close()

    assert seen == [1, 2, 3, 4, 5]
    # the partition the article is on was read to its end: its lag gauge is set, to 0
    assert sorted(lag for lag in lags.values() if lag is not None) == [0.0]
    assert sum(offset or 0 for offset in committed.values()) == len(versions)

    # a new member of the same group starts after the committed offsets: nothing is read twice
    again: list[int] = []
    loop = EventLoop(settings, "test-order", lambda d: again.append(d.event["version"]))
    for _ in range(4):
        loop.poll_once(timeout_ms=300)
    loop.close()
    assert again == []


def test_undecodable_and_rejected_events_go_to_the_dead_letter_topic_and_the_loop_goes_on(settings):
    rng = random.Random(4)
    good, hostile = corpus.story(rng, "good-1"), corpus.story(rng, "hostile-1")
    kafka = bus.producer(settings)
    kafka.send(settings.topics.articles, key=b"junk", value=b"<not avro>")
    kafka.send(settings.topics.articles, key=b"hostile-1", value=codec.encode(hostile))
    bus.publish_events(settings, kafka, [good])
    kafka.close()

    handled: list[str] = []

    def handle(delivery: bus.Delivery) -> None:
        if delivery.event["article_id"].startswith("hostile"):
            raise ValueError("headline: refused for the test")
        handled.append(delivery.event["article_id"])

    loop = EventLoop(settings, "test-dlq", handle)
    drain(loop, 3)
    loop.close()

    assert handled == ["good-1"]
    dead = dead_letters(settings)
    reasons = {r.key: header(r, "dlq.reason") for r in dead}
    assert set(reasons) == {b"junk", b"hostile-1"}
    assert "undecodable" in reasons[b"junk"] and "marker" in reasons[b"junk"]
    assert "headline: refused for the test" in reasons[b"hostile-1"]
    junk = next(r for r in dead if r.key == b"junk")
    assert junk.value == b"<not avro>"  # the original bytes are kept for inspection
    assert header(junk, "dlq.consumer") == "test-dlq"
    assert header(junk, "dlq.topic") == settings.topics.articles


def test_published_events_carry_type_fingerprint_and_time_headers(settings):
    event = corpus.story(random.Random(5), "hdr-1")
    kafka = bus.producer(settings)
    bus.publish_events(settings, kafka, [event])
    kafka.close()
    records: list = []
    loop = EventLoop(settings, "test-headers", lambda d: records.append(d.record))
    drain(loop, 1)
    loop.close()
    record = records[0]
    assert record.key == b"hdr-1"
    assert header(record, "event_type") == "published"
    assert header(record, "schema_fingerprint") == codec.latest().fingerprint_hex
    assert header(record, "published_at").endswith("+00:00")
    assert header(record, "event_id") == event["event_id"]


def test_errors_the_loop_waits_out_are_the_retriable_and_the_rejoin_ones():
    assert bus.waitable(KafkaConnectionError("broker away"))
    assert bus.waitable(RebalanceInProgressError()) and bus.waitable(UnknownMemberIdError())
    assert not bus.waitable(CommitFailedError("lost to a rebalance"))
