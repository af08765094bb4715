"""The status server's gauges: what "is it healthy" asks, measured at each scrape from the
system's own records rather than from one process's memory, so they hold whichever process
is down: consumer groups' lag (the broker's committed offsets), every partner's queue,
retries, dead deliveries, sequence gaps and circuit (the webhook state file, see
:mod:`newswire.consumers.webhooks.partner_state`), and the dead-letter topic's tally.

A source that cannot be read (Kafka away) leaves its gauges out and says so in
``newswire_status_source_up{source}``.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Iterable

from kafka.errors import KafkaError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from newswire import logs
from newswire.consumers.webhooks.partner_state import PartnerState
from newswire.lag import PartitionLag
from newswire.status.dead_letters import DeadLetterTally

log = logs.get(__name__)

#: gauge name, help, how it is read from a partner's state
PARTNER_GAUGES: tuple[tuple[str, str, Callable[[PartnerState], float]], ...] = (
    ("newswire_outbox_depth", "Deliveries queued for a partner and not sent yet (pending)", lambda s: s.pending),
    ("newswire_pending_retries", "Pending deliveries that failed at least once", lambda s: s.pending_retries),
    ("newswire_dead_deliveries", "Deliveries whose retries are used up (deliveries redrive)", lambda s: s.dead),
    ("newswire_sequence_gaps", "Sequence numbers below the highest acknowledged one not acknowledged",
     lambda s: s.gaps),
    ("newswire_circuit_open", "1 when the partner's circuit breaker is open or half-open", lambda s: s.breaker != "closed"),
    ("newswire_partner_enabled", "1 when the partner is enabled, 0 when disabled (paused or 410)",
     lambda s: s.enabled),
    ("newswire_partner_held", "1 when a dead delivery holds a strict-order partner's line (deliveries skip)",
     lambda s: s.hold is not None),
    ("newswire_partner_consecutive_failures", "Failed attempts in a row since the partner last answered",
     lambda s: s.failing),
)


class StatusCollector(Collector):
    """Prometheus collector over the status page's sources (called at each scrape)."""

    def __init__(self, group_lag: Callable[[], list[PartitionLag]], partners: Callable[[], list[PartnerState]],
                 tally: DeadLetterTally):
        self.group_lag = group_lag
        self.partners = partners
        self.tally = tally

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("newswire_status_source_up", "1 when the status server could read this source",
                               labels=["source"])
        yield from self._lag(up)
        yield from self._partners(up)
        yield from self._dead_letters(up)
        yield up

    def _lag(self, up: GaugeMetricFamily) -> Iterable[Metric]:
        try:
            rows = self.group_lag()
        except KafkaError as exc:
            log.warning("status_gauge_failed", source="kafka", error=str(exc))
            up.add_metric(["kafka"], 0)
            return
        up.add_metric(["kafka"], 1)
        lag = GaugeMetricFamily("newswire_consumer_group_lag",
                                "Messages between a consumer group's committed offset and the end of the partition "
                                "(the broker's records)", labels=["group", "topic", "partition"])
        for row in rows:
            lag.add_metric([row.group, row.topic, str(row.partition)], row.lag)
        yield lag

    def _partners(self, up: GaugeMetricFamily) -> Iterable[Metric]:
        try:
            states = self.partners()
        except (OSError, sqlite3.Error) as exc:  # the state file cannot be read
            log.warning("status_gauge_failed", source="webhooks", error=str(exc))
            up.add_metric(["webhooks"], 0)
            return
        up.add_metric(["webhooks"], 1)
        for name, help_text, read in PARTNER_GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["partner"])
            for state in states:
                family.add_metric([state.partner], float(read(state)))
            yield family
        oldest = GaugeMetricFamily("newswire_oldest_pending_timestamp_seconds",
                                   "When the partner's oldest pending delivery was queued (Unix time)",
                                   labels=["partner"])
        for state in states:
            if state.oldest_pending_at is not None:
                oldest.add_metric([state.partner], state.oldest_pending_at)
        yield oldest

    def _dead_letters(self, up: GaugeMetricFamily) -> Iterable[Metric]:
        up.add_metric(["dead_letters"], 0 if self.tally.problem else 1)
        family = CounterMetricFamily("newswire_dead_letters", "Messages on the dead-letter topic, by consumer and "
                                     "kind of reason (read from its beginning)", labels=["consumer", "reason"])
        for row in self.tally.snapshot()["by_reason"]:
            family.add_metric([row["consumer"], row["reason"]], row["count"])
        yield family
