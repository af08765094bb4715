"""Running things twice (issue 10, item 6): the second one is refused at start, in one line that
names what already runs, with exit 1, and the first one is not disturbed.

The lock is an ``flock`` on a file holding the holder's pid: the OS drops it when the holder
dies, also by kill -9, so a crashed run never blocks the next one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from newswire import locks
from newswire.broker import free_ports
from newswire.run import CONSUMERS_WITH_METRICS
from tests.ports import free_port_block
from tests.webhooks_support import env_of, wait_for

pytestmark = pytest.mark.timeout(300)


def _env(settings, home: Path | None = None) -> dict[str, str]:
    return {**os.environ, **env_of(settings), **({"NEWSWIRE_HOME": str(home)} if home else {})}


def _newswire(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newswire.cli", "--log-json", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _eventually(check, what: str, timeout_s: float = 120) -> None:
    wait_for(check, what, timeout_s=timeout_s, every_s=0.3)


def _refusal(result: subprocess.CompletedProcess) -> str:
    """The one line a refused command prints (its other output: none)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_lock_names_its_holder_and_is_free_again_once_the_holder_is_killed(tmp_path):
    path = tmp_path / "state.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from newswire import locks; "
                               f"lock = locks.hold_lock(Path({str(path)!r}), port=8081); print('held', flush=True); "
                               "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(locks.LockHeld) as refused:
            locks.hold_lock(path)
        assert refused.value.pid == holder.pid and refused.value.holder["port"] == 8081
    finally:
        holder.kill()  # kill -9: no clean-up of its own
        holder.wait()
    lock = locks.hold_lock(path, port=9)
    try:
        assert json.loads(path.read_text()) == {"pid": os.getpid(), "port": 9}
    finally:
        lock.close()


@pytest.mark.broker
def test_a_second_pusher_on_the_same_state_is_refused_and_the_first_keeps_running(settings, tmp_path):
    env = _env(settings)
    log = open(tmp_path / "first.log", "w+")
    first = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--log-json", "webhooks", "run"], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        _eventually(lambda: '"pusher_started"' in (tmp_path / "first.log").read_text(), "the first pusher started")
        line = _refusal(_newswire(env, "webhooks", "run"))
        assert f"pid {first.pid}" in line and str(settings.home / "webhooks.sqlite3") in line, line
        assert "NEWSWIRE_STATE_URL" in line, line  # the way to run several
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        code = first.wait(timeout=60)
    assert code == 0, (tmp_path / "first.log").read_text()[-3000:]


@pytest.mark.broker
def test_a_port_in_use_ends_a_service_in_one_line(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _refusal(_newswire(_env(settings), "feeds", "serve", "--port", str(port)))
        assert "cannot listen" in line and str(port) in line and "address already in use" in line, line
        line = _refusal(_newswire(_env(settings), "--metrics-port", str(port), "topics", "list"))
        assert f"127.0.0.1:{port}" in line, line


@pytest.mark.broker
def test_a_second_run_is_refused_naming_the_first_and_its_services_are_left_alone(settings, tmp_path):
    names = ("ingest", "feeds", "status", "partner", "partner_api")
    ports = dict(zip(names, free_ports(len(names))))
    ports["metrics"] = free_port_block(1 + len(CONSUMERS_WITH_METRICS))  # base + 1, + 2, …
    options = ["--corpus", "5", "--ingest-port", str(ports["ingest"]), "--feeds-port", str(ports["feeds"]),
               "--status-port", str(ports["status"]), "--partner-port", str(ports["partner"]),
               "--partner-api-port", str(ports["partner_api"]),
               "--metrics-base-port", str(ports["metrics"])]
    env = _env(settings)
    out = open(tmp_path / "run.out", "w+")
    first = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--log-json", "run", *options], env=env,
                             stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert first.poll() is None, (tmp_path / "run.out").read_text()[-3000:]
            return "Ctrl-C stops everything cleanly." in (tmp_path / "run.out").read_text()

        try:
            _eventually(up, "the first run is up")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it printed: {(tmp_path / 'run.out').read_text()[-3000:]}") from None
        service_logs = {p: p.read_text() for p in (settings.home / "logs").glob("*.log")}

        line = _refusal(_newswire(env, "run", *options))
        assert f"pid {first.pid}" in line and f"feeds {ports['feeds']}" in line, line
        # another installation (home) on the same ports: the ports are named
        line = _refusal(_newswire(_env(settings, tmp_path / "other-home"), "run", *options))
        assert f"{ports['ingest']} (ingest)" in line and f"{ports['feeds']} (feeds)" in line, line

        assert first.poll() is None
        assert "service_died" not in (tmp_path / "run.out").read_text()
        for path, before in service_logs.items():  # nothing was written into the live services' logs
            after = path.read_text()
            assert "Address already in use" not in after and "Traceback" not in after[len(before):], path
    finally:
        first.send_signal(signal.SIGINT)
        code = first.wait(timeout=90)
    assert code == 0, (tmp_path / "run.out").read_text()[-3000:]
