"""Kafka away: every command says so in one line with exit 3; health and status tell the truth;
the ingest API publishes again as soon as the broker is back.

"Away" is a free port with nothing listening, or a broker of this module's own that is stopped
and started again (never the session broker).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from newswire import topics
from newswire.broker import LocalBroker, free_port, free_ports
from newswire.cli import EXIT_KAFKA
from newswire.config import Settings
from newswire.producers.ingest_api import ANSWER_GRACE_S, create_app
from newswire.status.server import make_app
from tests.http_server import serving
from tests.test_ingest_api import TOKEN, article, auth

pytestmark = pytest.mark.timeout(300)

#: NEWSWIRE_PRODUCER_TIMEOUT of the commands and servers run here
TIMEOUT_S = 3.0
FIXTURE_PAGE = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "tml-idlib-page.html"


def _nowhere(home: Path) -> Settings:
    return replace(Settings(), bootstrap_servers=f"127.0.0.1:{free_port()}", producer_timeout_s=TIMEOUT_S, home=home,
                   id_authority="newswire.example.org")


COMMANDS = {
    "topics ensure": ["topics", "ensure"],
    "topics list": ["topics", "list"],
    "publish": ["publish", str(FIXTURE_PAGE)],
    "publish --kill": ["publish", "--kill", "tml-1", "--reason", "Legal."],
    "replay --group": ["replay", "--group", "newswire-feeds", "--since", "1d"],
    "archive run": ["archive", "run", "--idle-stop", "1"],
    "newsml drop": ["newsml", "drop", "--dir", "{home}/drop", "--idle-stop", "1"],
    "webhooks run": ["webhooks", "run"],
    "feeds serve": ["feeds", "serve", "--port", "{port}"],
}


@pytest.mark.parametrize("verb", COMMANDS)
def test_every_command_says_in_one_line_that_kafka_is_not_reachable(verb, tmp_path):
    down = _nowhere(tmp_path / "home")
    argv = [a.format(home=down.home, port=free_port()) for a in COMMANDS[verb]]
    env = {**os.environ, **down.to_env()}
    result = subprocess.run([sys.executable, "-m", "newswire.cli", "--log-json", *argv], env=env,
                            capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    said = [line for line in lines if not line.startswith("{")]  # the structured log lines aside
    assert result.returncode == EXIT_KAFKA, lines
    assert len(said) == 1, lines
    assert said[0].startswith(f"error: Kafka at {down.bootstrap_servers} is not reachable"), said
    assert "newswire kafka status" in said[0] and "NEWSWIRE_BOOTSTRAP" in said[0]
    assert not [line for line in lines if '"logger": "kafka' in line], "kafka-python's lines in a command"


def test_kafka_status_says_the_broker_does_not_answer(tmp_path):
    down = _nowhere(tmp_path / "home")
    result = subprocess.run([sys.executable, "-m", "newswire.cli", "--bootstrap", down.bootstrap_servers,
                             "kafka", "status"], capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_KAFKA
    assert (result.stdout + result.stderr).splitlines() == [
        "bootstrap\tanswers\tlocal_pid", f"{down.bootstrap_servers}\tno\t-"]


def test_a_missing_topic_is_one_line_too(settings):
    # asked again for 1 s, not the default 15 s: the answer is the same
    asking = replace(settings, topic_wait_s=1.0)
    result = subprocess.run(
        [sys.executable, "-m", "newswire.cli", "replay", "--group", "newswire-feeds", "--since", "1d"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, **asking.to_env(), "NEWSWIRE_TOPIC_ARTICLES": f"{settings.topics.articles}-never-created"})
    assert result.returncode == EXIT_KAFKA
    assert (result.stdout + result.stderr).splitlines() == [
        f"error: Kafka at {settings.bootstrap_servers}: topic '{settings.topics.articles}-never-created' does not "
        f"exist or has no partitions (create it with `newswire topics ensure`)"]


def test_topics_list_asks_the_broker(settings):
    listed = subprocess.run(
        [sys.executable, "-m", "newswire.cli", "topics", "list"], capture_output=True, text=True, timeout=120,
        env={**os.environ, **settings.to_env(),
             "NEWSWIRE_TOPIC_DEAD_LETTER": f"{settings.topics.dead_letter}-never-created"})
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert listed.returncode == 1
    assert rows[0] == ["topic", "state", "partitions", "config", "purpose"]
    assert rows[1][:4] == [settings.topics.articles, "present", str(settings.topics.articles_partitions),
                           "retention.ms=-1 retention.bytes=-1"]  # what the broker has (the test's 3, not 6)
    assert rows[2][:4] == [f"{settings.topics.dead_letter}-never-created", "missing", "-", "-"]
    assert "newswire topics ensure" in listed.stderr


def _serving(app, scenario):
    """Run ``scenario(session, base_url)`` (an aiohttp client) against ``app`` served on 127.0.0.1."""
    async def client(base):
        async with aiohttp.ClientSession() as session:
            return await scenario(session, base)
    with serving(app) as base:
        return asyncio.run(client(base))


async def _get(session, url, timeout_s):
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
        return r.status, await r.json()


def test_ingest_health_is_503_while_kafka_is_away_and_ok_when_it_answers(settings, tmp_path):
    async def health(session, base):
        return await _get(session, f"{base}/healthz", 30), await _get(session, f"{base}/readyz", 30)

    away = _serving(create_app(_nowhere(tmp_path / "home"), [TOKEN]), health)
    there = _serving(create_app(settings, [TOKEN]), health)
    for status, body in away:
        assert (status, body["kafka_connected"], body["status"]) == (503, False, "kafka_unreachable")
    for status, body in there:
        assert (status, body) == (200, {"status": "ok", "kafka_connected": True})


def test_status_page_says_kafka_is_unreachable_and_answers_at_once(tmp_path):
    down = replace(_nowhere(tmp_path / "home"), producer_timeout_s=60.0)  # the page bounds its own wait

    async def scenario(session, base):
        return await _get(session, f"{base}/api/status", 30)  # far below the 60 s of the settings

    status, body = _serving(make_app(down), scenario)
    assert status == 200
    assert body["lag"] == []
    assert body["problems"]["lag"].startswith(f"Kafka at {down.bootstrap_servers} is not reachable")


def test_ingest_api_publishes_again_within_seconds_of_the_broker_coming_back(tmp_path):
    port, controller_port = free_ports(2)
    broker = LocalBroker(state_dir=tmp_path / "broker", cache=Settings.from_env().cache,
                         port=port, controller_port=controller_port)
    broker.start()
    own = replace(Settings.from_env(), bootstrap_servers=broker.bootstrap, home=tmp_path / "home",
                  producer_timeout_s=TIMEOUT_S, provider="Newswire Test Agency")
    topics.ensure(own)
    answer_within_s = TIMEOUT_S + ANSWER_GRACE_S + 5  # the documented bound, and slack for a busy CI

    async def post(session, base, n):
        async with session.post(f"{base}/v1/articles", json=article(f"tml-away-{n}"), headers=auth(),
                                timeout=aiohttp.ClientTimeout(total=answer_within_s)) as r:
            return r.status, await r.json()

    async def scenario(session, base):
        loop = asyncio.get_running_loop()
        first = await post(session, base, 0)
        await loop.run_in_executor(None, broker.stop)
        # while away: every answer is a 503 within the bound (the client's timeout fails it otherwise),
        # long enough that a write queued in the producer expires (its delivery timeout is 2 x the bound)
        away, until = [], time.monotonic() + 3 * TIMEOUT_S
        while time.monotonic() < until:  # a CMS's concurrent requests: the executor's threads share the producer
            away += await asyncio.gather(*(post(session, base, len(away) + 1 + i) for i in range(4)))
        await loop.run_in_executor(None, broker.start)
        back_at, after = time.monotonic(), []
        while not after or after[-1][0] != 202:
            assert time.monotonic() - back_at < 60, f"still refused a minute after the broker came back: {after}"
            after.append(await post(session, base, 100 + len(after)))
            await asyncio.sleep(0.2)
        return first, away, after

    try:
        first, away, after = _serving(create_app(own, [TOKEN]), scenario)
    finally:
        broker.kill()  # the fault was the stop in the scenario; nothing is read after this one
    assert first[0] == 202
    assert away and all(status == 503 for status, _ in away), away
    assert all(body["errors"][0]["field"] == "kafka" for _, body in away)
    assert after[-1][0] == 202 and after[-1][1]["article_id"].startswith("tml-away-")
    print(json.dumps({"refused_while_away": len(away), "posts_until_accepted_after_return": len(after)}))
