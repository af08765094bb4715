"""Metrics, alert rules and the Grafana dashboard, against real processes.

The status server's gauges are read from a state file a real pusher wrote (a partner with a
dead delivery and a hole in its sequence, a partner whose circuit opened), by scraping a real
``newswire status serve``; the ingest API's counters by scraping a real ``newswire ingest serve``
after real requests. The alert rules load in Debian's ``promtool`` and pass their unit tests
(tests/prometheus/alerts_test.yml); every metric the dashboard and the rules name is one those
processes expose.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from newswire import bus, corpus
from newswire.broker import free_port
from newswire.consumers.webhooks import pusher, signing
from tests.replay_support import NEWSWIRE, cli_env, own_group
from tests.topic_reader import drain
from tests.webhooks_support import PartnerServer, config, publish, query, register, wait_for

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "newswire-alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERT_TESTS = ROOT / "tests" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "newswire-dashboard.json"
METRIC_NAME = re.compile(r"\bnewswire_[a-z0-9_]+\b")
#: the breaker the pusher and the status server are both told about
BREAKER = {"NEWSWIRE_WEBHOOK_BREAKER_FAILURES": "3", "NEWSWIRE_WEBHOOK_BREAKER_COOLDOWN": "600"}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: deploy/dev.sh test installs Debian's prometheus package"
    return path


def test_alert_rules_load_and_pass_their_unit_tests():
    checked = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = subprocess.run([promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    configured = subprocess.run([promtool(), "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True,
                                text=True)
    assert configured.returncode == 0, configured.stdout + configured.stderr


def test_the_rules_unit_tests_would_catch_a_broken_rule(tmp_path):
    """A rule that cannot fire (a misspelt metric) fails its promtool test: the tests bite."""
    (tmp_path / "deploy" / "prometheus").mkdir(parents=True)
    (tmp_path / "tests" / "prometheus").mkdir(parents=True)
    broken = ALERTS.read_text().replace("newswire_circuit_open == 1", "newswire_circuit_opened == 1")
    (tmp_path / "deploy" / "prometheus" / ALERTS.name).write_text(broken)
    shutil.copy(ALERT_TESTS, tmp_path / "tests" / "prometheus")
    tested = subprocess.run([promtool(), "test", "rules", str(tmp_path / "tests" / "prometheus" / ALERT_TESTS.name)],
                            capture_output=True, text=True)
    assert tested.returncode != 0
    assert "NewswirePartnerCircuitOpen" in tested.stdout + tested.stderr


def queries() -> dict[str, list[str]]:
    """Every PromQL expression the dashboard and the alert rules hold, by where it is."""
    import yaml

    dashboard = json.loads(DASHBOARD.read_text())
    found = {f"panel {p['title']!r}": [t["expr"] for t in p["targets"]] for p in dashboard["panels"]}
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = [rule["expr"]]
    return found


def exposed_names(text: str) -> set[str]:
    """The series names a scrape offers (a histogram's _bucket/_sum/_count, a counter's _total)."""
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def scrape(url: str) -> str:
    return urllib.request.urlopen(url, timeout=10).read().decode()


def samples(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name}


class Served:
    """A ``newswire`` service in its own process, answering on 127.0.0.1:port."""

    def __init__(self, settings, args: list[str], log: Path, **env: str):
        self.port = free_port()
        self.log = log.open("w")
        self.process = subprocess.Popen([*NEWSWIRE, *args, "--port", str(self.port)],
                                        env={**cli_env(settings), **env}, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

        def answers() -> bool:
            assert self.process.poll() is None, f"{args} exited: {log.read_text()[-2000:]}"
            try:
                urllib.request.urlopen(self.base + "/metrics", timeout=5)
                return True
            except urllib.error.HTTPError as exc:
                raise AssertionError(f"{args}: /metrics answered {exc.code}: {log.read_text()[-2000:]}") from exc
            except (urllib.error.URLError, ConnectionError):
                return False
        try:
            wait_for(answers, f"{' '.join(args)} answers", timeout_s=60, every_s=0.2)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)
        self.log.close()


@pytest.fixture
def troubled_partners(settings):
    """acme: the story that takes its number 1 is refused until its retries are spent (dead, a
    hole under the two numbers acknowledged after it); down: nothing listens, its circuit opens
    after three failures. A group that dead-lettered a hostile message."""
    acme = PartnerServer([signing.new_secret()],
                         respond=lambda n, request: 500 if request.headers["newswire-sequence"] == "1" else 200).start()
    down = PartnerServer([signing.new_secret()])  # never started: connections are refused
    register(settings, "acme", acme)
    register(settings, "down", down)
    kafka = bus.producer(settings)
    kafka.send(settings.topics.articles, key=b"obs-bad", value=b"not an event")
    kafka.flush()
    kafka.close()
    publish(settings, [corpus.story(random.Random(i), f"obs-{i}") for i in range(3)])
    with pusher.Running(settings, config(schedule=(0, 0.2), breaker_failures=3, breaker_cooldown_s=600)):
        wait_for(lambda: len(acme.ok()) == 2 and len(acme.snapshot()) == 4, "acme got two stories, refused one twice")
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE partner_id = 'acme'"
                               " AND status = 'dead'")[0][0] == 1, "acme's refused story is dead")
        wait_for(lambda: query(settings, "SELECT count(*) FROM attempts WHERE partner_id = 'down'")[0][0] >= 3,
                 "three failed attempts to down")
    acme.stop()
    # a group with a dead letter of its own, this test's alone (a test in another worker may consume in "newswire-feeds")
    loop = bus.EventLoop(settings, own_group(settings, "feeds"), lambda d: None)
    drain(loop, 4)
    loop.close()
    return settings


def test_status_metrics_serve_gauges_and_every_queried_metric_exists(troubled_partners, tmp_path):
    settings = troubled_partners
    status = Served(settings, ["status", "serve"], tmp_path / "status.log", **BREAKER)
    ingest = Served(settings, ["ingest", "serve"], tmp_path / "ingest.log", NEWSWIRE_INGEST_TOKENS="t0ken")
    try:
        wait_for(lambda: samples(scrape(status.base + "/metrics"), "newswire_dead_letters_total"),
                 "the status server tallied the dead letters", timeout_s=60, every_s=0.5)
        text = scrape(status.base + "/metrics")
        assert json.loads(scrape(status.base + "/healthz")) == {"status": "ok"}  # the compose file's check
        by_partner = {name: {dict(k)["partner"]: v for k, v in samples(text, name).items()}
                      for name in ("newswire_outbox_depth", "newswire_pending_retries", "newswire_dead_deliveries",
                                   "newswire_sequence_gaps", "newswire_circuit_open", "newswire_partner_enabled")}
        # down's first failures open its circuit before their retries are due, unless a busy
        # machine is slow to queue the later stories: then one of them gives up (dead) first
        (down_pending, down_dead), = query(settings, "SELECT sum(status = 'pending'), sum(status = 'dead')"
                                                   " FROM deliveries WHERE partner_id = 'down'")
        assert down_pending + down_dead == 3 and down_pending >= 1
        assert by_partner == {
            "newswire_outbox_depth": {"acme": 0, "down": down_pending},
            "newswire_pending_retries": {"acme": 0, "down": down_pending},
            "newswire_dead_deliveries": {"acme": 1, "down": down_dead},
            "newswire_sequence_gaps": {"acme": 1, "down": 0},
            "newswire_circuit_open": {"acme": 0, "down": 1},
            "newswire_partner_enabled": {"acme": 1, "down": 1},
        }
        dead_letters = {dict(k)["consumer"]: v for k, v in samples(text, "newswire_dead_letters_total").items()}
        # the hostile message by the feeds group and the pusher's consume loop; acme's story that gave up
        feeds = own_group(settings, "feeds")
        assert dead_letters == {feeds: 1, "webhooks": 1, "newswire-webhooks": 1 + down_dead}
        lag = {(dict(k)["group"], dict(k)["partition"]): v for k, v in samples(text, "newswire_consumer_group_lag").items()}
        assert len([g for g, _ in lag if g == feeds]) == settings.topics.articles_partitions
        assert all(v == 0 for (g, _), v in lag.items() if g == feeds)
        assert samples(text, "newswire_status_source_up") == {(("source", s),): 1.0
                                                              for s in ("kafka", "webhooks", "dead_letters")}
        assert samples(text, "newswire_oldest_pending_timestamp_seconds").keys() == {(("partner", "down"),)}

        # the ingest API counts its requests by route and status, and times them
        story = json.dumps({"article_id": "obs-ingest", "headline": "Counted", "language": "en", "body": "<p>Counted.</p>",
                            "provider": "Agency"}).encode()
        for token in ("t0ken", "wrong"):
            request = urllib.request.Request(ingest.base + "/v1/articles", data=story, method="POST", headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=30)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
        ingest_text = scrape(ingest.base + "/metrics")
        counted = {(dict(k)["route"], dict(k)["status"]): v
                   for k, v in samples(ingest_text, "newswire_ingest_requests_total").items()}
        assert counted[("/v1/articles", "202")] == 1
        assert counted[("/v1/articles", "401")] == 1
        timed = samples(ingest_text, "newswire_ingest_request_seconds_count")
        assert timed[(("method", "POST"), ("route", "/v1/articles"))] == 2

        names = exposed_names(text) | exposed_names(ingest_text)
        unknown = {where: sorted(set(METRIC_NAME.findall(" ".join(exprs))) - names)
                   for where, exprs in queries().items()}
        assert {where: missing for where, missing in unknown.items() if missing} == {}
        assert len(queries()) >= 20  # the check looked at the dashboard's panels and the rules
    finally:
        status.stop()
        ingest.stop()


def test_the_name_check_catches_a_metric_that_does_not_exist():
    assert "newswire_outbox_depth" in exposed_names("# TYPE newswire_outbox_depth gauge\nnewswire_outbox_depth 1\n")
    names = exposed_names("# TYPE newswire_deliveries counter\nnewswire_deliveries_total 1\n")
    assert names == {"newswire_deliveries_total"}
    assert set(METRIC_NAME.findall("sum(rate(newswire_deliveries_totl[5m]))")) - names == {"newswire_deliveries_totl"}


def test_dashboard_is_a_grafana_dashboard_with_a_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "newswire-overview" and dashboard["schemaVersion"] >= 36
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
