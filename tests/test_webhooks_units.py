"""Pure parts of the partner push: filters, retry policy, circuit breaker, rate limit,
signatures, payloads (validated against the official ninjs schema and NewsML-G2 XSD)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from lxml import etree
from standardwebhooks import Webhook

from newswire import corpus, events
from newswire.consumers.webhooks import payloads, policy, receipts, signing
from newswire.consumers.webhooks.config import parse_cidrs, parse_schedule
from newswire.consumers.webhooks.filters import History, Subscription, decide, mismatch
from newswire.timespec import parse_instant
from tests.test_format_newsml import SCHEMA as NEWSML_XSD
from tests.official_schemas import ninjs_validator
from tests.test_format_ninjs import VALIDATOR as NINJS_SCHEMA

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def _event(**changes) -> dict:
    event = corpus.story(random.Random(4), "u-1", body_bytes=400, images=1)
    event.update(categories=["politics"], language="en-GB", urgency=3, **changes)
    return event


def test_subscription_criteria_each_match_and_mismatch():
    event = _event()
    assert mismatch(Subscription(), event) is None
    assert mismatch(Subscription(categories=("Politics", "sport")), event) is None
    assert mismatch(Subscription(categories=("sport",)), event) == "no subscribed category"
    assert mismatch(Subscription(languages=("en",)), event) is None  # en takes en-GB
    assert mismatch(Subscription(languages=("en-US",)), event) == "language en-GB not subscribed"
    assert mismatch(Subscription(max_urgency=3), event) is None
    assert mismatch(Subscription(max_urgency=2), event) == "urgency 3 above 2"
    assert mismatch(Subscription(event_types=("updated",)), event) == "event type published not subscribed"
    with pytest.raises(ValueError, match="max_urgency"):
        Subscription(max_urgency=12)
    with pytest.raises(ValueError, match="event_types: unknown"):
        Subscription(event_types=("deleted",))
    sub = Subscription(categories=("a",), languages=("ar",), max_urgency=4, event_types=("published",), embargoed=True)
    assert Subscription.from_json(sub.to_json()) == sub


def test_follow_ups_go_to_whoever_had_the_story_and_nothing_goes_after_a_kill():
    story = _event()
    kill = corpus.next_version(story, "killed")
    correction = corpus.next_version(story, "corrected", categories=["sport"])
    sport_only = Subscription(categories=("sport",))
    had_it = History(max_version=1)
    assert decide(sport_only, kill, had_it, enabled=True, now=NOW).deliver
    assert decide(sport_only, kill, had_it, enabled=False, now=NOW).deliver  # held for a disabled partner
    assert not decide(Subscription(), kill, History(), enabled=True, now=NOW).deliver  # never had it
    assert decide(Subscription(categories=("politics",)), correction, had_it, enabled=True, now=NOW).deliver
    update = corpus.next_version(story, "updated", categories=["sport"])
    assert not decide(Subscription(categories=("politics",)), update, had_it, enabled=True, now=NOW).deliver
    after_kill = corpus.next_version(kill, "updated")
    assert not decide(Subscription(), after_kill, History(max_version=2, killed=True), enabled=True, now=NOW).deliver
    assert not decide(Subscription(), story, History(max_version=1), enabled=True, now=NOW).deliver  # replayed
    assert not decide(Subscription(), story, History(), enabled=False, now=NOW).deliver


def test_embargoed_stories_wait_for_partners_not_entitled():
    embargoed = _event(embargo_until=NOW + timedelta(hours=1))
    held = decide(Subscription(), embargoed, History(), enabled=True, now=NOW)
    assert held.deliver and held.not_before == NOW + timedelta(hours=1)
    assert decide(Subscription(embargoed=True), embargoed, History(), enabled=True, now=NOW).not_before is None
    lifted = _event(embargo_until=NOW - timedelta(minutes=1))
    assert decide(Subscription(), lifted, History(), enabled=True, now=NOW).not_before is None


class _RoutingOnly(dict):
    """An event that fails on any field outside the routing fields, whichever way it is read."""

    def __getitem__(self, key):
        if key not in events.ROUTING_FIELDS:
            raise AssertionError(f"decide read {key!r}, not a routing field")
        return super().__getitem__(key)

    get = lambda self, key, default=None: self[key] if key in self else default  # noqa: E731


@pytest.mark.parametrize("event_type", events.EVENT_TYPES)
def test_decide_reads_only_the_routing_fields(event_type):
    """A replay's queueing gets an event's routing fields only (consumers/replay/readahead.py):
    every decision on them is the decision on the whole event."""
    subscriptions = [Subscription(), Subscription(categories=("sport",)), Subscription(languages=("fr",)),
                     Subscription(max_urgency=2), Subscription(event_types=("published",)),
                     Subscription(embargoed=True)]
    histories = [History(), History(max_version=1), History(max_version=9), History(max_version=1, killed=True)]
    for embargo in (None, NOW + timedelta(hours=1), NOW - timedelta(hours=1)):
        event = _event(event_type=event_type, version=2, embargo_until=embargo)
        head = _RoutingOnly(events.routing(event))
        for sub in subscriptions:
            for history in histories:
                for enabled in (True, False):
                    assert decide(sub, head, history, enabled=enabled, now=NOW) == decide(
                        sub, event, history, enabled=enabled, now=NOW)


def test_backoff_follows_the_schedule_with_bounded_jitter_and_ends():
    schedule = parse_schedule("0,5,300,1800")
    rng = random.Random(1)
    assert policy.backoff(schedule, 0, 0.2, rng) == 0
    delays = [policy.backoff(schedule, 2, 0.2, rng) for _ in range(200)]
    assert 240 <= min(delays) < 300 < max(delays) <= 360
    assert policy.backoff(schedule, 4, 0.2, rng) is None
    with pytest.raises(ValueError, match="NEWSWIRE_WEBHOOK_SCHEDULE"):
        parse_schedule("5,soon")
    with pytest.raises(ValueError, match="'10.0.0.0/33'"):
        parse_cidrs("127.0.0.0/8,10.0.0.0/33")


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    assert policy.retry_after("120") == 120
    assert policy.retry_after("Thu, 26 Nov 2026 09:01:30 GMT", now=now) == 90
    assert policy.retry_after("Thu, 26 Nov 2026 08:00:00 GMT", now=now) == 0
    assert policy.retry_after("soon") is None and policy.retry_after(None) is None
    for hostile in ("²", "٣", "9" * 5000, "-5", "1e3"):  # a partner's header: ignored, never a crash
        assert policy.retry_after(hostile, now=now) is None, hostile


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_breaker_opens_probes_and_closes():
    clock = FakeClock()
    breaker = policy.CircuitBreaker(failures=3, cooldown_s=30, clock=clock)
    assert not breaker.failure() and not breaker.failure() and breaker.capacity(4) == 4
    assert breaker.failure() and breaker.state == "open" and breaker.capacity(4) == 0
    clock.now += 29
    assert breaker.capacity(4) == 0 and breaker.wait_s() == pytest.approx(1)
    clock.now += 1
    assert breaker.state == "half-open" and breaker.capacity(4) == 1
    breaker.sending()
    assert breaker.capacity(4) == 0  # one probe at a time
    assert breaker.failure() and breaker.state == "open"  # the probe failed: open again
    clock.now += 30
    breaker.sending()
    breaker.inconclusive()  # a throttled probe: neither open nor closed, probe again after a cool-down
    assert breaker.state == "open" and breaker.capacity(4) == 0
    clock.now += 30
    breaker.sending()
    breaker.success()
    assert breaker.state == "closed" and breaker.capacity(4) == 4


def test_rate_limit_is_a_token_bucket():
    clock = FakeClock()
    limit = policy.RateLimit(2, clock=clock)
    assert limit.wait_s() == 0 and limit.wait_s() == 0
    assert limit.wait_s() == pytest.approx(0.5)
    clock.now += 0.5
    assert limit.wait_s() == 0
    assert policy.RateLimit(0, clock=clock).wait_s() == 0


def test_signatures_verify_with_the_official_package_and_secrets_are_checked():
    old, new = signing.new_secret(), signing.new_secret()
    body = b'{"type":"article.published"}'
    headers = signing.headers("evt-1", body, [new, old], content_type="application/json", seq=7)
    assert headers["webhook-id"] == "evt-1" and headers["newswire-sequence"] == "7"
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"type": "article.published"}
    at = datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=timezone.utc)
    for text in ("", '{"headline":"Zürich — 東京"}', "x" * 5000):
        assert signing.signature("evt-1", int(at.timestamp()), text.encode(), [new]) == \
            Webhook(new).sign("evt-1", at, text)
    with pytest.raises(ValueError, match="must start with 'whsec_'"):
        signing.check_secret("abc")
    with pytest.raises(ValueError, match="too short"):
        signing.check_secret("whsec_YWJj")


def test_ninjs_payload_is_an_envelope_around_a_valid_ninjs_item():
    event = _event()
    body = payloads.render(event, "ninjs", seq=42, at=NOW, authority="news.agency.example")
    envelope = json.loads(body)
    assert envelope["type"] == "article.published" and envelope["sequence"] == 42
    assert envelope["timestamp"].endswith("Z")
    NINJS_SCHEMA.validate(envelope["data"])


def test_ninjs2_payload_is_the_same_envelope_around_a_valid_ninjs_2_2_item():
    event = _event()
    renderer = payloads.Renderer(event, at=NOW, authority="news.agency.example")
    old, new = json.loads(renderer("ninjs2", seq=7)), json.loads(renderer("ninjs", seq=7))
    assert {k: v for k, v in old.items() if k != "data"} == {k: v for k, v in new.items() if k != "data"}
    ninjs_validator("2.2").validate(old["data"])
    assert old["data"]["standard"]["version"] == "2.2" and old["data"]["uri"] == new["data"]["uri"]


def test_newsml_payload_is_a_valid_news_message_whose_transmit_id_is_the_sequence():
    body = payloads.render(corpus.next_version(_event(), "killed"), "newsml", seq=135, at=NOW,
                           authority="news.agency.example")
    document = etree.fromstring(body)
    NEWSML_XSD.assertValid(document)
    ns = {"g2": "http://iptc.org/std/nar/2006-10-01/"}
    assert document.findtext("g2:header/g2:transmitId", namespaces=ns) == "135"
    assert document.find("g2:itemSet/g2:newsItem/g2:itemMeta/g2:pubStatus", ns).get("qcode") == "stat:canceled"


def test_receipt_query_helpers_parse_spans_and_ranges():
    assert parse_instant("1h", datetime.fromtimestamp(10_000, timezone.utc)).timestamp() == 6400
    assert parse_instant("2026-11-26T09:00:00Z") == NOW
    assert receipts.parse_seq_range("120-135") == (120, 135) and receipts.parse_seq_range("7") == (7, 7)
    with pytest.raises(ValueError, match="ends before it starts"):
        receipts.parse_seq_range("9-3")
    with pytest.raises(ValueError, match="neither an ISO 8601 time"):
        parse_instant("yesterday-ish")
    for other_digits in ("٣", "１２-１５", "²"):  # Arabic-Indic, fullwidth, superscript: not numbers here
        with pytest.raises(ValueError, match="seq"):
            receipts.parse_seq_range(other_digits)
    with pytest.raises(ValueError, match="neither an ISO 8601 time"):
        parse_instant("٣d")
