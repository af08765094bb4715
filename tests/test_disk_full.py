"""A full disk under the consumers' state (issue 10, item 7): each consumer waits, says so in its
log, commits nothing to Kafka that is not on disk, and resumes by itself when space returns.

NEWSWIRE_HOME is a small tmpfs (mounted for the test: the test fails if it cannot be). The
archive, the NewsML-G2 drop folder, the feeds consumer + server and the pusher (with a
drop-folder partner outside the tmpfs) run as real processes on it. Some stories go through;
then the tmpfs is filled to the last byte and more stories are published: every process stays
alive, logs ``disk_full`` (path, retry_in_s), hands out none of them and commits none of their
offsets; killed and started again on the full disk, each waits the same way. The filler is deleted: every process catches up alone, and each output holds every
story exactly once.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest

from newswire import disk, lag
from newswire.broker import free_port
from newswire.consumers.archive.index import Index
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.signing import new_secret
from tests.feeds_support import publish, story
from tests.webhooks_support import PartnerServer, env_of, query, register, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

TMPFS_SIZE = "16m"
BEFORE, WHILE_FULL = 4, 8
GROUPS = ("newswire-archive", "newswire-newsml", "newswire-feeds")


@contextmanager
def tmpfs(mount_point: Path) -> Iterator[Path]:
    mount_point.mkdir(parents=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"this test needs a tmpfs (root, mount -t tmpfs): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(path: Path) -> None:
    """Take every free byte of the filesystem ``path`` is on (ENOSPC ends it)."""
    chunk = 1 << 20
    with open(path, "wb", buffering=0) as out:
        while chunk:
            try:
                out.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk //= 2


def eventually(check: Callable[[], object], what: str, timeout_s: float = 120.0) -> None:
    wait_for(check, what, timeout_s=timeout_s, every_s=0.3)


class Consumers:
    """The four consumer processes, their logs, and what each has put out."""

    def __init__(self, settings, tmp_path: Path):
        self.settings = settings
        self.drop = settings.home / "drop"
        self.partner = tmp_path / "partner"  # the partner's folder is not on the full disk
        self.partner.mkdir()
        self.feeds_port = free_port()
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, *names: str, **env: str) -> None:
        """Start the consumers ``names`` (all four by default), with ``env`` added to theirs."""
        env = {**os.environ, **env_of(self.settings, NEWSWIRE_WEBHOOK_GROUP="newswire-webhooks-diskfull", **env)}
        commands = {"archive": ["archive", "run"], "drop": ["newsml", "drop", "--dir", str(self.drop)],
                    "feeds": ["feeds", "serve", "--port", str(self.feeds_port)], "pusher": ["webhooks", "run"]}
        for name, args in commands.items():
            if names and name not in names:
                continue
            with open(self.logs / f"{name}.log", "ab") as out:
                self.processes[name] = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--log-json", *args],
                                                        env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """kill -9 every consumer (to start them again as a supervisor would)."""
        for process in self.processes.values():
            process.kill()
            process.wait()

    def log(self, name: str) -> list[dict]:
        lines = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def alive(self) -> dict[str, int | None]:
        return {name: p.poll() for name, p in self.processes.items()}

    # --- what each consumer handed out, as article ids (repeated when handed out twice) --------

    def archived(self) -> list[str]:
        try:
            index = Index(self.settings.home / "archive" / "index.sqlite", readonly=True)
        except FileNotFoundError:  # not there yet
            return []
        try:
            return [e.article_id for e in index.entries()]
        except sqlite3.OperationalError as exc:  # the file is there, its tables not yet (a full disk at start)
            if "no such table" not in str(exc):
                raise
            return []
        finally:
            index.close()

    def dropped(self) -> list[str]:
        return [p.name.rsplit("_v", 1)[0] for p in self.drop.rglob("*.xml") if not p.name.startswith(".")]

    def served(self) -> list[str]:
        try:
            url = f"http://127.0.0.1:{self.feeds_port}/changes.json?since=0&limit=100"
            with urllib.request.urlopen(url, timeout=10) as response:
                items = json.loads(response.read())["items"]
        except OSError:
            return []
        return [item["uri"].rsplit(":", 1)[1] for item in items]

    def pushed(self) -> list[str]:
        return [p.name.split("_", 1)[1].rsplit("_v", 1)[0] for p in self.partner.iterdir()
                if not p.name.startswith(".")]

    def outputs(self) -> dict[str, list[str]]:
        return {"archive": self.archived(), "drop": self.dropped(), "feeds": self.served(), "pusher": self.pushed()}

    def stop(self) -> dict[str, int]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes


def _add_partner(settings, folder: Path) -> None:
    db = store.connect(settings)
    try:
        registry.add(db, registry.Partner(id="diskfull", name="Disk full", url=folder.as_uri(), format="ninjs",
                                          secrets=(new_secret(),)))
    finally:
        db.close()


def _committed_lag(settings) -> dict[str, int]:
    wanted = set(GROUPS) | {"newswire-webhooks-diskfull"}
    total: dict[str, int] = {}
    for row in lag.group_lag(settings):
        if row.group in wanted:
            total[row.group] = total.get(row.group, 0) + row.lag
    return total


def test_a_full_disk_stops_every_consumer_safely_and_each_resumes_alone_when_space_returns(settings, tmp_path):
    with tmpfs(tmp_path / "home") as home:
        settings = replace(settings, home=home)
        _add_partner(settings, tmp_path / "partner")
        consumers = Consumers(settings, tmp_path)
        consumers.start()
        try:
            now = datetime.now(timezone.utc)
            first = [f"diskfull-a{i}" for i in range(BEFORE)]
            publish(settings, *(story(a, now) for a in first))
            eventually(lambda: all(sorted(o) == sorted(first) for o in consumers.outputs().values()),
                       f"every consumer has the first {BEFORE} stories: {consumers.outputs()}")
            eventually(lambda: set(_committed_lag(settings)) >= set(GROUPS) | {"newswire-webhooks-diskfull"}
                       and not any(_committed_lag(settings).values()),
                       f"every group committed the first stories: {_committed_lag(settings)}")

            fill(home / "filler")
            later = [f"diskfull-b{i}" for i in range(WHILE_FULL)]
            publish(settings, *(story(a, now) for a in later))

            for name in consumers.processes:  # and keeps trying: twice at least
                eventually(lambda: sum(r.get("event") == "disk_full" for r in consumers.log(name)) >= 2,
                           f"{name} logs disk_full: {consumers.text(name)[-2000:]}")
            full = [r for name in consumers.processes for r in consumers.log(name) if r.get("event") == "disk_full"]
            assert all(r["path"] and str(home) in r["path"] and r["retry_in_s"] > 0 for r in full), full[:4]
            assert consumers.alive() == dict.fromkeys(consumers.processes, None)
            # nothing of the later stories is handed out, and no consumer committed their offsets
            # (the pusher queues each story before its offsets; its partner folder is elsewhere)
            outputs = consumers.outputs()
            assert all(sorted(o) == sorted(first) for name, o in outputs.items()), outputs
            assert all(_committed_lag(settings)[group] == WHILE_FULL for group in GROUPS), _committed_lag(settings)

            # killed and started again on the full disk, as a supervisor would: each waits again
            seen = {name: len(consumers.log(name)) for name in consumers.processes}
            consumers.kill()
            consumers.start()
            for name in consumers.processes:
                eventually(lambda: sum(r.get("event") == "disk_full" for r in consumers.log(name)[seen[name]:]) >= 2,
                           f"{name}, started on a full disk, logs disk_full: {consumers.text(name)[-2000:]}")
            assert consumers.alive() == dict.fromkeys(consumers.processes, None)

            (home / "filler").unlink()
            everything = sorted(first + later)
            eventually(lambda: all(sorted(o) == everything for o in consumers.outputs().values()),
                       f"every consumer caught up once space returned: {consumers.outputs()}", timeout_s=180)
            eventually(lambda: not any(_committed_lag(settings).values()),
                       f"every group committed everything: {_committed_lag(settings)}")
            assert consumers.alive() == dict.fromkeys(consumers.processes, None)
            for name in consumers.processes:
                assert "Traceback" not in consumers.text(name), consumers.text(name)[-3000:]
        finally:
            codes = consumers.stop()
        assert codes == dict.fromkeys(consumers.processes, 0), {n: consumers.text(n)[-2000:] for n in codes}


def test_a_pusher_whose_receipts_cannot_be_written_waits_and_sends_nothing_twice(settings, tmp_path):
    """The asyncio side: partner answers that cannot be recorded are held (each article waits
    for its receipt), not taken for failures and sent again; they are recorded once there is room."""
    with tmpfs(tmp_path / "home") as home:
        settings = replace(settings, home=home)
        server = PartnerServer([new_secret()], respond=lambda n, request: "block").start()
        register(settings, "held", server, concurrency=4)
        consumers = Consumers(settings, tmp_path)
        consumers.start("pusher", NEWSWIRE_WEBHOOK_ALLOW_CIDRS="127.0.0.0/8")
        try:
            articles = [f"receipts-{i}" for i in range(3)]
            publish(settings, *(story(a, datetime.now(timezone.utc)) for a in articles))
            eventually(lambda: len(server.snapshot()) == len(articles), "every story reached the partner")

            fill(home / "filler")
            server.gate.set()  # the partner answers 200 now; the receipts cannot be written
            eventually(lambda: sum(r.get("event") == "disk_full" for r in consumers.log("pusher")) >= 2,
                       f"the pusher logs disk_full: {consumers.text('pusher')[-2000:]}")
            assert consumers.alive() == {"pusher": None}
            assert len(server.snapshot()) == len(articles)  # nothing sent again meanwhile
            assert not any(r.get("event") == "delivery_crashed" for r in consumers.log("pusher"))

            (home / "filler").unlink()
            eventually(lambda: [s for (s,) in query(settings, "SELECT status FROM deliveries")] == ["delivered"] * 3,
                       "every delivery recorded as delivered")
            ids = [r.webhook_id for r in server.snapshot()]
            assert len(ids) == len(set(ids)) == len(articles)
            assert "Traceback" not in consumers.text("pusher")
        finally:
            codes = consumers.stop()
            server.stop()
        assert codes == {"pusher": 0}, consumers.text("pusher")[-2000:]


def test_a_full_disk_is_told_from_other_errors_also_behind_the_error_it_caused(tmp_path):
    db = sqlite3.connect(tmp_path / "small.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("PRAGMA max_page_count = 3")  # SQLite's own SQLITE_FULL, as on a full disk
    with pytest.raises(sqlite3.OperationalError) as full:
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    assert disk.disk_full(full.value) is full.value
    with pytest.raises(sqlite3.OperationalError) as second:  # raised while handling it: a ROLLBACK
        try:                                                  # with no transaction left to roll back
            raise OSError(errno.ENOSPC, "No space left on device", "/state/view.sqlite3")
        except OSError:
            db.execute("ROLLBACK")
    assert disk.disk_full(second.value).filename == "/state/view.sqlite3"
    assert disk.disk_full(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    assert disk.disk_full(OSError(errno.EACCES, "Permission denied")) is None
    assert disk.disk_full(sqlite3.OperationalError("database is locked")) is None
    assert disk.disk_full(ValueError("headline: missing")) is None


@pytest.mark.parametrize("service", ["feeds", "pusher"])
def test_a_consumer_that_stops_on_another_error_takes_its_process_down_with_exit_1(service, settings, tmp_path):
    """Not a full disk but a file-size limit (RLIMIT_FSIZE: writes past it fail with EFBIG, which
    SQLite reports as an I/O error): the consume loop cannot go on, so the process must not go on
    without it (a feed server serving a view that never moves); it exits 1 with one line, so that
    a supervisor restarts it."""
    consumers = Consumers(settings, tmp_path)
    consumers.feeds_port = port = free_port()
    _add_partner(settings, consumers.partner)
    command = {"feeds": ["feeds", "serve", "--port", str(port)], "pusher": ["webhooks", "run"]}[service]
    first_output = {"feeds": consumers.served, "pusher": consumers.pushed}[service]
    stopped = {"feeds": "Error: the feeds consumer stopped: ", "pusher": "Error: the pusher stopped: "}[service]

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    process = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--log-json", *command],
                               env={**os.environ, **env_of(settings)}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, preexec_fn=limit_file_size)
    try:
        publish(settings, story("limited-0", datetime.now(timezone.utc)))
        eventually(lambda: first_output() == ["limited-0"], f"{service} handed out the first story")
        publish(settings, *(story(f"limited-{i}", datetime.now(timezone.utc)) for i in range(1, 80)))
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, output[-3000:]
    last = output.rstrip().splitlines()[-1]
    assert last.startswith(stopped) and "disk I/O error" in last, last
