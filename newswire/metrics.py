"""Prometheus metrics of every newswire process, one registry per process.

Consumers count what they read and what they produced; the latency histograms measure from
the ``published_at`` header the producer stamps on each event to the moment an output exists
(a feed item, a file, an archive record) or a partner acknowledged it.

A helper process that does part of a command's work (the pusher's Kafka side) reports its
newswire metrics to the process that started it (:func:`own`); that process serves them
beside its own (:func:`relay`), so one ``/metrics`` answers for the command.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest, start_http_server)
from prometheus_client.metrics_core import Metric

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
#: over every partner: a histogram per partner would be 17 series each (160,000 at 10,000
#: partners, and 40 MiB of the pusher's memory); a partner's own figures are its receipts'
QUEUED_TO_PARTNER = Histogram(
    "newswire_queued_to_partner_seconds",
    "From a delivery's queueing (its event read by the pusher) to the partner's 2xx, over every partner; "
    "publish to queued is newswire_publish_to_output_seconds{consumer=\"webhooks\"}",
    buckets=LATENCY_BUCKETS)
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


#: the newswire metrics of the helper processes this one started: helper → its families, as last reported
_RELAYED: dict[object, list[Metric]] = {}


def own() -> list[Metric]:
    """This process's newswire metric families (what a helper process reports to its parent)."""
    return [family for family in REGISTRY.collect() if family.name.startswith("newswire_")]


def relay(helper: object, families: list[Metric] | None) -> None:
    """Serve ``families`` (:func:`own` of the process ``helper`` stands for) beside this
    process's metrics from now on, in place of what it reported before (None: no more)."""
    if families is None:
        _RELAYED.pop(helper, None)
    else:
        _RELAYED[helper] = families


class _WithRelayed:
    """A collector: this process's metrics, each family with the helpers' samples of it added."""

    def collect(self):
        families = {family.name: family for family in REGISTRY.collect()}
        for relayed in list(_RELAYED.values()):
            for family in relayed:
                if (mine := families.get(family.name)) is None:
                    families[family.name] = family
                else:
                    merged = Metric(mine.name, mine.documentation, mine.type, mine.unit)
                    merged.samples = mine.samples + family.samples
                    families[family.name] = merged
        return iter(families.values())


_SERVED = CollectorRegistry(auto_describe=False)
_SERVED.register(_WithRelayed())


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose ``/metrics`` of this process (and its helpers) on ``host:port`` (a daemon thread)."""
    start_http_server(port, addr=host, registry=_SERVED)


def exposition() -> tuple[bytes, str]:
    """This process's metrics (and its helpers') in Prometheus's text format, and its content
    type (for an HTTP app)."""
    return generate_latest(_SERVED), CONTENT_TYPE_LATEST
