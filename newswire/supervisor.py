"""A small process supervisor: the services of ``newswire run``, each in its own process.

Each service is a ``newswire …`` command. The supervisor starts them, restarts one that dies
(with a growing pause, so a crash loop does not spin), and on Ctrl-C / SIGTERM sends SIGTERM
to every service and waits for each to finish its clean shutdown (consumers commit their
offsets), killing only those that do not stop in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from newswire import logs

log = logs.get(__name__)


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def newswire_command(*args: str) -> list[str]:
    """argv of a ``newswire`` subcommand, run with this very interpreter."""
    return [sys.executable, "-m", "newswire.cli", *args]


class Supervisor:
    def __init__(self, services: list[Service], log_dir: Path, stop_timeout_s: float = 20.0):
        self.services = services
        self.log_dir = log_dir
        self.stop_timeout_s = stop_timeout_s
        self.stopping = threading.Event()

    def log_path(self, service: Service) -> Path:
        return self.log_dir / f"{service.name}.log"

    def _start(self, service: Service) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path(service), "ab")
        service.process = subprocess.Popen(
            service.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **service.env}, start_new_session=True,
        )
        out.close()
        log.info("service_started", service=service.name, pid=service.process.pid,
                 log=str(self.log_path(service)))

    def start_all(self) -> None:
        for service in self.services:
            self._start(service)

    def watch(self, duration_s: float | None = None) -> None:
        """Restart services that die, until :meth:`stop` or ``duration_s`` passed."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self.stopping.wait(0.5):
            if deadline is not None and time.monotonic() > deadline:
                break
            for service in self.services:
                if service.running or self.stopping.is_set():
                    continue
                now = time.monotonic()
                if service.next_start == 0.0:
                    pause = min(30.0, 2 ** service.restarts)
                    service.next_start = now + pause
                    log.error("service_died", service=service.name,
                              exit_code=service.process.returncode if service.process else None,
                              restart_in_s=pause, log=str(self.log_path(service)))
                elif now >= service.next_start:
                    service.restarts += 1
                    service.next_start = 0.0
                    self._start(service)

    def stop(self) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        """SIGTERM every service, wait for clean exits, SIGKILL what is left."""
        for service in reversed(self.services):
            if service.running:
                service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for service in reversed(self.services):
            if service.process is None:
                continue
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                log.info("service_stopped", service=service.name, exit_code=service.process.returncode)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()
                log.warning("service_killed", service=service.name,
                            reason=f"no exit within {self.stop_timeout_s:.0f} s of SIGTERM")
