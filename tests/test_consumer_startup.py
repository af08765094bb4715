"""Consumers that start before their topic exists, and what an idle consumer costs.

A consumer that joined its group before its topic's partitions were known used to be assigned
nothing and serve nothing for ever (issue 10, item 1). Here the topic is created only after the
consumers run: the EventLoop in this process, and the feeds service and the NewsML-G2 drop folder
as real processes; each must take in the story published then. Their CPU time is read from
/proc/<pid>/stat over 10 s (one window for both processes), waiting for the topic (under 10 % of a core) and idle after it
(under 2 %): bounds against a spin, not timings.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from newswire import bus, corpus, topics
from newswire.broker import free_port
from newswire.config import Settings, Topics
from tests.replay_support import own_groups

pytestmark = pytest.mark.timeout(300)

#: a spin would take most of a core; an idle consumer polls a few times a second
IDLE_CPU_SHARE = 0.02
#: while its topic does not exist, kafka-python's I/O thread keeps asking for its metadata:
#: about 2 % of a core here (measured 1.6-2.3 %), still far from a spin
WAITING_CPU_SHARE = 0.10
WINDOW_S = 10.0


def _not_created(settings: Settings) -> Settings:
    """``settings`` with topics of their own that do not exist yet."""
    suffix = uuid.uuid4().hex[:8]
    return replace(settings, topics=Topics(articles=f"late-{suffix}", articles_partitions=3,
                                           dead_letter=f"late-{suffix}.dlq", dead_letter_partitions=1))


def _publish_one(settings: Settings, article_id: str) -> None:
    kafka = bus.producer(settings)
    try:
        bus.publish_events(settings, kafka, [corpus.story(random.Random(7), article_id, body_bytes=300, images=0)])
    finally:
        kafka.close(timeout=10)


def _eventually(check, timeout_s: float = 120.0, what: str = "the condition", explain=lambda: "") -> None:
    """Wait for ``check()``; on timeout fail naming ``what``, with ``explain()`` (e.g. a process's log)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come true within {timeout_s:.0f} s\n{explain()}")
        time.sleep(0.2)


def _tail(path: Path, lines: int = 40) -> str:
    return f"--- last lines of {path.name}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_shares(processes: dict[str, subprocess.Popen], window_s: float = WINDOW_S) -> dict[str, float]:
    """Each process's share of a core over one window that all of them share."""
    before, started = {name: _cpu_seconds(p.pid) for name, p in processes.items()}, time.monotonic()
    time.sleep(window_s)  # the measurement window itself
    elapsed = time.monotonic() - started
    return {name: (_cpu_seconds(p.pid) - before[name]) / elapsed for name, p in processes.items()}


def test_event_loop_started_before_its_topic_exists_consumes_it_once_created(settings):
    late = _not_created(settings)
    seen: list[str] = []
    loop = bus.EventLoop(late, f"late-{uuid.uuid4().hex[:6]}", lambda d: seen.append(d.event["article_id"]))
    consuming = threading.Thread(target=loop.run, daemon=True)
    consuming.start()
    try:
        _eventually(lambda: loop.consumer.subscription(), 30, "the subscription")
        time.sleep(1)  # let it join the group while the topic does not exist
        assert not loop.consumer.assignment()
        topics.ensure(late)
        _publish_one(late, "late-story-1")
        _eventually(lambda: seen == ["late-story-1"], what="consuming the topic created after the consumer")
    finally:
        loop.stop()
        consuming.join(60)
    assert not consuming.is_alive()


def _env(settings: Settings) -> dict[str, str]:
    """The processes' environment: ``settings``, and consumer groups of this test's own: in the
    services' fixed groups a member an earlier test left can take part in this test's rebalance
    (once in CI the feed item never came: after the topic was created the feeds consumer was
    assigned nothing)."""
    return {**os.environ, **settings.to_env(), **own_groups(settings)}


def _served(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.cpu_budget
def test_feeds_and_drop_folder_processes_started_before_their_topic_consume_it_and_idle_cheaply(settings, tmp_path):
    late = _not_created(settings)
    port, drop_dir = free_port(), tmp_path / "drop"
    command = [sys.executable, "-m", "newswire.cli", "--log-json"]
    logs = {name: open(tmp_path / f"{name}.log", "w+") for name in ("feeds", "drop")}
    feeds = subprocess.Popen(command + ["feeds", "serve", "--port", str(port)], env=_env(late),
                             stdout=logs["feeds"], stderr=subprocess.STDOUT)
    drop = subprocess.Popen(command + ["newsml", "drop", "--dir", str(drop_dir)], env=_env(late),
                            stdout=logs["drop"], stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _eventually(lambda: _served(f"{base}/feeds"), 60, "the feed server")
        # measure the wait itself, not a process still starting up
        _eventually(lambda: all('"consumer_started"' in (tmp_path / f"{name}.log").read_text() for name in logs),
                    60, "both consumers subscribed")
        waiting = _cpu_shares({"feeds": feeds, "drop": drop})
        assert feeds.poll() is None and drop.poll() is None
        topics.ensure(late)
        _publish_one(late, "late-story-2")
        _eventually(lambda: _served(f"{base}/items/late-story-2?format=ninjs"), what="the feed item",
                    explain=lambda: _tail(tmp_path / "feeds.log"))
        _eventually(lambda: any(drop_dir.rglob("late-story-2_v1.xml")), what="the drop folder file",
                    explain=lambda: _tail(tmp_path / "drop.log"))
        idle = _cpu_shares({"feeds": feeds, "drop": drop})
    finally:
        for process in (feeds, drop):
            process.terminate()
        for process in (feeds, drop):
            process.wait(60)
        for log in logs.values():
            log.close()
    assert all(share < WAITING_CPU_SHARE for share in waiting.values()), f"waiting for the topic: {waiting}"
    assert all(share < IDLE_CPU_SHARE for share in idle.values()), f"idle: {idle}"
