"""The pusher's Kafka side runs in a child process (consumers/webhooks/queueing.py): a real
``newswire webhooks run``, a real broker, a real partner endpoint. When the child is killed
the pusher ends in one line with exit code 1 for its supervisor, and a restart delivers what
was published meanwhile; when the pusher is killed, its Kafka side goes with it."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys

from newswire import corpus
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import PartnerServer, failure_line, publish, pusher_process, register, wait_for


def _kafka_pid(log_path) -> int | None:
    """The Kafka side's pid, from the pusher's ``pusher_started`` line (None before it)."""
    for line in log_path.read_text().splitlines():
        if '"pusher_started"' in line:
            return json.loads(line)["kafka_pid"]  # a line is one JSON object: the processes never interleave
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stories(prefix: str, n: int) -> list[dict]:
    rng = random.Random(prefix)
    return [corpus.story(rng, f"{prefix}-{i}", body_bytes=300) for i in range(n)]


def test_a_killed_kafka_side_ends_the_pusher_in_one_line_and_a_restart_delivers_the_rest(settings, tmp_path):
    server = PartnerServer([new_secret()]).start()
    try:
        register(settings, "p0", server)
        log = tmp_path / "pusher.log"
        pusher = pusher_process(settings, log)
        try:
            wait_for(lambda: _kafka_pid(log) is not None, "the pusher started", timeout_s=90)
            first = _stories("before", 3)
            publish(settings, first)
            wait_for(lambda: len(server.ok()) == 3, "the first stories delivered", timeout_s=90)
            os.kill(_kafka_pid(log), signal.SIGKILL)
            code = pusher.wait(60)
        finally:
            if pusher.poll() is None:
                pusher.kill()
                pusher.wait()
        last = failure_line(code, log)
        assert last.startswith("Error: the pusher stopped: the Kafka consume loop failed: "), last
        assert "it was killed by signal 9 (SIGKILL)" in last, last

        later = _stories("while-down", 3)
        publish(settings, later)  # nobody consumes: the restarted pusher must pick these up
        restarted = pusher_process(settings, tmp_path / "restarted.log")
        try:
            wait_for(lambda: len(server.ok()) == 6, "the stories published while it was down", timeout_s=120)
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(60) == 0, (tmp_path / "restarted.log").read_text()[-3000:]
        delivered = sorted(r.article[0] for r in server.ok())
        assert delivered == sorted(e["article_id"] for e in first + later)  # each once
        assert [r.seq for r in server.ok()] == list(range(1, 7))
    finally:
        server.stop()


def test_a_killed_pusher_takes_its_kafka_side_with_it(settings, tmp_path):
    log = tmp_path / "pusher.log"
    pusher = pusher_process(settings, log)
    try:
        wait_for(lambda: _kafka_pid(log) is not None, "the pusher started", timeout_s=90)
        child = _kafka_pid(log)
        assert _alive(child)
        pusher.kill()
        pusher.wait(30)
        wait_for(lambda: not _alive(child) or _zombie(child), "the Kafka side gone with the pusher", timeout_s=30)
    finally:
        if pusher.poll() is None:
            pusher.kill()
            pusher.wait()


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but not been reaped (its parent died: init reaps it soon)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_kafka_side_does_not_load_the_http_stack():
    """Its memory counts in the pusher's (bench/push.py): the registry it reads must not pull in
    aiohttp and the HTTP client (consumers/webhooks/partners.py imports them where it checks an
    endpoint, at registration)."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, newswire.consumers.webhooks.queueing\n"
                               "print(' '.join(m for m in ('aiohttp', 'httptools') if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
