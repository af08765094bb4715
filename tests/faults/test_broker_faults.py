"""Broker faults, each on brokers of its own (never the session broker).

Injected: the broker stopped and restarted while a producer and a consumer run; one node of
a three-node KRaft cluster (replication factor 3, min.insync.replicas 2) killed with SIGKILL
under load. Asserted: every event the producer was told is written is read back, and nothing
arrives twice under a different event id (a consumer may re-read after a rebalance; the event
id lets any receiver de-duplicate, so the check is on the set of ids and their count).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from newswire import bus, corpus, topics
from newswire.broker import LocalBroker, free_ports, local_cluster
from newswire.config import Settings, Topics

pytestmark = [pytest.mark.timeout(420),
              # a consumer thread that dies of the outage fails the test, not just a warning
              pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")]


def _settings(bootstrap: str, home: Path, replication: int = 1) -> Settings:
    suffix = uuid.uuid4().hex[:6]
    return replace(Settings.from_env(), bootstrap_servers=bootstrap, home=home, replication_factor=replication,
                   producer_timeout_s=60.0,
                   topics=Topics(articles=f"fault-{suffix}", articles_partitions=3,
                                 dead_letter=f"fault-{suffix}.dlq", dead_letter_partitions=1))


class Producing(threading.Thread):
    """Publishes ``n`` small events one by one, waiting for each acknowledgement."""

    def __init__(self, settings: Settings, n: int):
        super().__init__(daemon=True)
        self.settings, self.n = settings, n
        self.acked: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        kafka = bus.producer(self.settings)
        rng = random.Random(11)
        try:
            for i in range(self.n):
                event = corpus.story(rng, f"fault-{i}", body_bytes=300, images=0)
                try:
                    bus.publish_events(self.settings, kafka, [event])
                    self.acked.append(event["event_id"])
                except bus.PublishError as exc:
                    self.errors.append(str(exc))
        finally:
            kafka.close(timeout=10)


def _read_all(settings: Settings, expected: int, group: str, timeout_s: float = 120) -> list[str]:
    seen: list[str] = []
    loop = bus.EventLoop(settings, group, lambda d: seen.append(d.event["event_id"]))
    deadline = time.monotonic() + timeout_s
    try:
        while len(set(seen)) < expected and time.monotonic() < deadline:
            loop.poll_once(timeout_ms=500)
    finally:
        loop.close()
    return seen


def _wait_until(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the load to progress")
        time.sleep(0.05)


def test_broker_stopped_and_restarted_while_producing_and_consuming(tmp_path):
    port, controller_port = free_ports(2)
    broker = LocalBroker(state_dir=tmp_path / "broker", cache=Settings.from_env().cache,
                         port=port, controller_port=controller_port)
    broker.start()
    try:
        settings = _settings(broker.bootstrap, tmp_path / "home")
        topics.ensure(settings)
        consumed: list[str] = []
        loop = bus.EventLoop(settings, "fault-consumer", lambda d: consumed.append(d.event["event_id"]))
        consuming = threading.Thread(target=loop.run, daemon=True)
        consuming.start()
        load = Producing(settings, 400)
        load.start()
        _wait_until(lambda: len(load.acked) >= 100, 120)
        broker.stop()  # injected: the broker goes away mid-stream…
        time.sleep(2)
        broker.start()  # …and comes back on the same data
        load.join(300)
        assert not load.is_alive()
        _wait_until(lambda: set(load.acked) <= set(consumed) or not consuming.is_alive(), 120)
        assert consuming.is_alive(), "the consumer stopped during the outage"
        loop.stop()
        consuming.join(30)
    finally:
        broker.kill()  # the fault was the stop above; nothing is read after this one
    assert load.errors == []
    assert len(load.acked) == 400
    assert set(consumed) == set(load.acked)


#: the controller fences a node that has not heartbeaten for 4 s (Kafka's default: 9 s), so the
#: killed node's partitions get their new leaders sooner; still 8 heartbeats, against a busy machine
FAST_FENCING = {"broker.session.timeout.ms": "4000", "broker.heartbeat.interval.ms": "500"}


def test_three_node_cluster_loses_nothing_when_one_node_is_killed(tmp_path):
    nodes = [replace(node, extra_properties=FAST_FENCING)
             for node in local_cluster(tmp_path / "cluster", Settings.from_env().cache, size=3)]
    # formatted and launched side by side: each format is a JVM run of its own
    with ThreadPoolExecutor(len(nodes)) as starting:
        list(starting.map(lambda node: node.start(wait=False), nodes))
    try:
        for node in nodes:
            node.wait_ready(120)
        bootstrap = ",".join(node.bootstrap for node in nodes)
        settings = _settings(bootstrap, tmp_path / "home", replication=3)
        topics.ensure(settings)
        load = Producing(settings, 600)
        load.start()
        _wait_until(lambda: len(load.acked) >= 200, 180)
        nodes[1].kill()  # injected: SIGKILL of one of the three nodes under load
        load.join(300)
        assert not load.is_alive()
        survivors = replace(settings, bootstrap_servers=",".join(n.bootstrap for n in (nodes[0], nodes[2])))
        consumed = _read_all(survivors, len(load.acked), "fault-cluster-reader")
    finally:
        for node in nodes:
            node.kill()  # nothing is read after: a controlled shutdown short of a node takes up to 30 s
    assert load.errors == []
    assert len(load.acked) == 600
    assert set(consumed) == set(load.acked)
