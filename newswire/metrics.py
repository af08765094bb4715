"""Prometheus metrics of every newswire process, one registry per process.

Consumers count what they read and what they produced; the latency histograms measure from
the ``published_at`` header the producer stamps on each event to the moment an output exists
(a feed item, a file, an archive record) or a partner acknowledged it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

EVENTS_CONSUMED = Counter(
    "newswire_events_consumed_total", "Events read from Kafka by a consumer, by outcome",
    ["consumer", "outcome"])
OUTPUTS_PRODUCED = Counter(
    "newswire_outputs_produced_total", "Outputs produced (feed items, files, archive records)",
    ["consumer", "kind"])
DELIVERIES = Counter(
    "newswire_deliveries_total", "Webhook delivery attempts by partner and outcome",
    ["partner", "outcome"])
PUBLISH_TO_OUTPUT = Histogram(
    "newswire_publish_to_output_seconds", "From the event's publish time to its output",
    ["consumer"], buckets=LATENCY_BUCKETS)
QUEUED_TO_PARTNER = Histogram(
    "newswire_queued_to_partner_seconds",
    "From a delivery's queueing (its event read by the pusher) to the partner's 2xx; "
    "publish to queued is newswire_publish_to_output_seconds{consumer=\"webhooks\"}",
    ["partner"], buckets=LATENCY_BUCKETS)
INGEST_REQUESTS = Counter(
    "newswire_ingest_requests_total", "Requests to the ingest API by method, route and HTTP status",
    ["method", "route", "status"])
INGEST_SECONDS = Histogram(
    "newswire_ingest_request_seconds", "Time the ingest API took to answer (Kafka's acknowledgement included)",
    ["method", "route"], buckets=LATENCY_BUCKETS)
CONSUMER_LAG = Gauge(
    "newswire_consumer_lag", "Messages between a consumer's position and the end of the partition",
    ["consumer", "topic", "partition"])


def seconds_since(published_at: str | None) -> float | None:
    """Seconds from an ISO ``published_at`` header value to now; None when absent or unreadable."""
    if not published_at:
        return None
    try:
        then = datetime.fromisoformat(published_at)
    except ValueError:
        return None
    if then.utcoffset() is None:  # a naive time cannot be compared with now (TypeError)
        return None
    return max(0.0, (datetime.now(timezone.utc) - then).total_seconds())


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose ``/metrics`` of this process on ``host:port`` (a daemon thread)."""
    start_http_server(port, addr=host)


def exposition() -> tuple[bytes, str]:
    """This process's metrics in Prometheus's text format, and its content type (for an HTTP app)."""
    return generate_latest(), CONTENT_TYPE_LATEST
