"""``newswire run``, the README's run command, end to end as a person would use it.

The whole system runs as real processes on the session broker: the fixture story and a
corpus are published, and every output is looked at where the printed "where to look" says.
Then Ctrl-C (SIGINT): every service exits 0 after committing, and no consumer group is left
with lag, so nothing is lost across the stop.
"""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
import urllib.request

import feedparser
import pytest

from newswire import lag
from newswire.broker import free_ports
from newswire.run import CONSUMERS_WITH_METRICS, DEMO_PROVIDER, FIXTURE_ID
from tests.ports import free_port_block
from tests.replay_support import own_group, own_groups

HEADLINE = "Turkey Continues Talks with Russia on Idlib Fighting"

pytestmark = pytest.mark.timeout(300)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _eventually(check, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{check.__name__} did not come true within {timeout_s:.0f} s")
        time.sleep(0.5)


def test_run_brings_up_the_system_and_ctrl_c_stops_it_cleanly(settings, tmp_path):
    names = ("ingest", "feeds", "status", "partner", "partner_api")
    ports = dict(zip(names, free_ports(len(names))))
    ports["metrics"] = free_port_block(1 + len(CONSUMERS_WITH_METRICS))  # base + 1, + 2, …
    # the services consume in groups of this test's own: a test in another worker may consume in
    # the fixed ones (newswire-feeds, …) at the same time, on its own topic
    groups = own_groups(settings) | {"NEWSWIRE_WEBHOOK_GROUP": own_group(settings, "webhooks")}
    expected_groups = set(groups.values())
    env = {**os.environ, **settings.to_env(), **groups}
    for name in ("NEWSWIRE_PROVIDER", "NEWSWIRE_ID_AUTHORITY"):  # a fresh installation: run gives the demo's
        env.pop(name, None)
    out = open(tmp_path / "run.out", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "newswire.cli", "--log-json", "run", "--corpus", "30",
         "--ingest-port", str(ports["ingest"]), "--feeds-port", str(ports["feeds"]),
         "--status-port", str(ports["status"]), "--partner-port", str(ports["partner"]),
         "--partner-api-port", str(ports["partner_api"]),
         "--metrics-base-port", str(ports["metrics"])],
        env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        feeds = f"http://127.0.0.1:{ports['feeds']}"

        def fixture_in_the_rss_feed():
            parsed = feedparser.parse(_get(f"{feeds}/feeds/all.rss"))
            return parsed.bozo == 0 and any(entry.title == HEADLINE for entry in parsed.entries)

        def partner_received_the_fixture_signed():
            log = settings.home / "logs" / "demo-partner.log"
            return log.exists() and any("signature ok" in line and HEADLINE in line
                                        for line in log.read_text().splitlines())

        def status_page_shows_every_group():
            status = _get(f"http://127.0.0.1:{ports['status']}/api/status").decode()
            return all(group in status for group in expected_groups)

        def drop_folder_has_the_fixture():
            return list((settings.home / "drop").rglob(f"{FIXTURE_ID}_v1.xml"))

        _eventually(fixture_in_the_rss_feed)
        _eventually(partner_received_the_fixture_signed)
        _eventually(status_page_shows_every_group)
        _eventually(drop_folder_has_the_fixture)
        assert _get(f"http://127.0.0.1:{ports['partner_api']}/healthz") == b'{"status": "ok"}'
        fixture = _get(f"{feeds}/items/{FIXTURE_ID}?format=newsml")
        assert HEADLINE.encode() in fixture
        # the editor's Media Topics (publish --subject), each with the Subject Code Superdesk reads
        assert b'qcode="medtop:20000056"' in fixture and b'qcode="subj:16002000"' in fixture
        for offset, consumer in enumerate(("feeds", "newsml-drop", "webhooks", "archive"), start=1):
            def consumed_exposed():  # the pusher's Kafka side (a child process) reports every second
                exposed = _get(f"http://127.0.0.1:{ports['metrics'] + offset}/metrics").decode()
                return exposed if f'newswire_events_consumed_total{{consumer="{consumer}",outcome="handled"}}' \
                    in exposed else None

            exposed = _eventually(consumed_exposed, timeout_s=30)
            if consumer == "webhooks":
                assert 'newswire_deliveries_total{outcome="delivered",partner="demo"}' in exposed
                assert re.search(r'^newswire_queued_to_partner_seconds_count [1-9]', exposed, re.M)
        def where_to_look_printed():
            return "Ctrl-C stops everything cleanly." in (tmp_path / "run.out").read_text()

        _eventually(where_to_look_printed)
        assert f"{feeds}/feeds/all.rss" in (tmp_path / "run.out").read_text()
        # the environment names no agency (a fresh installation): the demo gives its services its own
        story = {"article_id": "demo-no-provider", "headline": "A story that names no agency", "language": "en",
                 "body": "<p>The ingest API takes the agency the demo configured.</p>"}
        posted = urllib.request.Request(f"http://127.0.0.1:{ports['ingest']}/v1/articles", json.dumps(story).encode(),
                                        headers={"Authorization": "Bearer demo-ingest-token",
                                                 "Content-Type": "application/json"})
        with urllib.request.urlopen(posted, timeout=60) as reply:
            assert reply.status == 202
        _eventually(lambda: json.loads(_get(f"{feeds}/items/demo-no-provider.json"))["copyrightHolder"] == DEMO_PROVIDER)
        def every_group_caught_up():
            rows = [row for row in lag.group_lag(settings) if row.group in expected_groups]
            return {row.group for row in rows} == expected_groups and all(row.lag == 0 for row in rows)

        _eventually(every_group_caught_up)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        exit_code = process.wait(timeout=90)
    printed = (tmp_path / "run.out").read_text()
    assert exit_code == 0, printed[-3000:]
    assert printed.rstrip().endswith("stopped")
    assert printed.count('"event": "service_stopped"') == 8 and "service_killed" not in printed
    # the broker was already running, so run leaves it running; every group stays caught up
    assert every_group_caught_up()


def test_the_demo_makes_its_cleaning_key_once_in_its_home_and_an_installations_own_key_wins(tmp_path):
    from dataclasses import replace

    from newswire.config import Settings
    from newswire.run import CLEAN_KEY_FILE, with_clean_key

    plain = replace(Settings(), home=tmp_path / "home", clean_key=None)
    first = with_clean_key(plain)
    key_file = plain.home / CLEAN_KEY_FILE
    assert first.clean_key and len(first.clean_key) == 64 and key_file.read_text() == first.clean_key
    assert key_file.stat().st_mode & 0o077 == 0, "the key is readable by others"
    assert with_clean_key(plain).clean_key == first.clean_key, "a second run made another key"
    assert first.to_env()["NEWSWIRE_CLEAN_KEY"] == first.clean_key  # every service of the demo is told it
    own = replace(plain, clean_key="an-installations-own-key")
    assert with_clean_key(own).clean_key == "an-installations-own-key"
