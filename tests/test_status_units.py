"""Pure parts of the status page and its gauges: a dead letter's origin and time, the circuit
as the receipts imply it, the answer excerpt a receipt keeps, charts, redirects after sign-in."""

from __future__ import annotations

from kafka.consumer.fetcher import ConsumerRecord

from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.delivery import EXCERPT_CHARS, failure
from newswire.consumers.webhooks.partner_state import breaker_state
from newswire.consumers.webhooks.receipts import Failing
from newswire.status import charts
from newswire.status.dead_letters import dead_letter
from newswire.status.server import _local


def record(headers: list[tuple[str, str]], timestamp_ms: int = 1_700_000_000_000) -> ConsumerRecord:
    return ConsumerRecord("articles.dlq", 0, None, 7, timestamp_ms, 0, b"story-1", b"...",
                          [(k, v.encode()) for k, v in headers], None, 7, 3, 0)


def test_a_dead_delivery_names_its_partner_and_is_dated_by_its_record():
    entry = dead_letter(record([("dlq.reason", "gave up after 8 attempts: HTTP 500"), ("dlq.consumer", "newswire-webhooks"),
                                ("webhook.partner", "acme"), ("webhook.delivery_id", "41"), ("webhook.seq", "12"),
                                ("webhook.version", "3")]))
    assert (entry.source, entry.delivery_id, entry.key) == ("partner acme seq 12 v3", 41, "story-1")
    assert entry.at == "2023-11-14T22:13:20+00:00"


def test_a_consumer_dead_letter_keeps_its_position_and_time():
    entry = dead_letter(record([("dlq.reason", "undecodable: x"), ("dlq.consumer", "newswire-feeds"),
                                ("dlq.topic", "articles"), ("dlq.partition", "2"), ("dlq.offset", "99"),
                                ("dlq.at", "2026-01-01T00:00:00+00:00")]))
    assert (entry.source, entry.at, entry.delivery_id) == ("articles/2@99", "2026-01-01T00:00:00+00:00", None)


def test_breaker_state_follows_the_pushers_rule():
    config = WebhookConfig(breaker_failures=3, breaker_cooldown_s=30)
    assert breaker_state(None, config, now=100) == "closed"
    assert breaker_state(Failing(2, 99), config, now=100) == "closed"
    assert breaker_state(Failing(3, 99), config, now=100) == "open"
    assert breaker_state(Failing(5, 60), config, now=100) == "half-open"


def test_a_failed_answer_keeps_the_start_of_what_the_partner_said_on_one_line():
    assert failure(503, "Service Unavailable", b"") == "HTTP 503 Service Unavailable"
    said = failure(500, "Internal Server Error", b'{"error":\n  "db down"}' + b"x" * 5000)
    assert said.startswith('HTTP 500 Internal Server Error: {"error": "db down"}xxx')
    assert len(said) == len("HTTP 500 Internal Server Error: ") + EXCERPT_CHARS
    assert failure(400, None, b"\xff\xfebad") == "HTTP 400: \ufffd\ufffdbad"


def test_chart_svg_scales_to_the_peak_and_escapes_its_labels():
    chart = charts.Chart("<b>x</b>", "ms", [0.0, 600.0], [charts.Series("a&b", "#000", [2.0, 4.0])])
    svg = str(charts.svg(chart, width=100, height=100))
    assert 'height="50.0"' in svg and 'height="100.0"' in svg  # 2 of a peak of 4, and the peak
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "a&amp;b" in svg
    assert "peak 4 ms" in svg


def test_sign_in_redirects_only_to_this_server():
    assert _local("/partners/acme?x=1") == "/partners/acme?x=1"
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", ""):
        assert _local(elsewhere) == "/"
