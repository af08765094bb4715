"""A real PostgreSQL server for the tests and benchmarks: Debian's package (``postgresql``,
installed by ``deploy/dev.sh``), a new cluster in a temporary directory, on a free port of
127.0.0.1, trusted local connections, one database per test.

``initdb`` and ``postgres`` refuse to run as root: as root (CI, this machine) they run as the
package's ``postgres`` user (``setpriv``), which owns the directory; as anyone else, as that
same user who runs the tests.
If the server cannot start, :meth:`LocalPostgres.start` raises with its log: the tests that
need it fail, loudly, rather than being skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from newswire.broker import free_port


def _bin_dir() -> Path:
    """The newest installed server's binaries (Debian keeps them out of PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    if which := shutil.which("postgres"):
        return Path(which).parent
    raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql; deploy/dev.sh test "
                       "installs it): the webhook tests on the PostgreSQL store need its server")


class LocalPostgres:
    """One throw-away PostgreSQL cluster; :meth:`new_database` gives each test its own database."""

    def __init__(self, *, port: int | None = None, user: str = "postgres"):
        self.port = port or free_port()
        self.bin = _bin_dir()
        self.as_root = os.geteuid() == 0
        self.user = user
        self.base = Path(tempfile.mkdtemp(prefix="newswire-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.process: subprocess.Popen | None = None

    def _run_as(self) -> list[str]:
        # setpriv execs (runuser would stay as the parent and turn signals into SIGTERM)
        return ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups", "--"] \
            if self.as_root else []

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 60.0) -> "LocalPostgres":
        if self.as_root:
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError:
                self.stop()
                raise RuntimeError(f"PostgreSQL refuses to run as root and there is no user {self.user!r} to run it "
                                   "as (Debian's postgresql package creates it: apt-get install postgresql)") from None
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        init = subprocess.run([*self._run_as(), str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user,
                               "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                              capture_output=True, text=True)
        if init.returncode:
            self.stop()
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        # fsync off: a test kills pushers, never the server; the socket directory is the cluster's own
        args = [*self._run_as(), str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.base}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=300", "-c", "shared_buffers=64MB"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{tail}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    tail = self.log_tail()
                    self.stop()
                    raise RuntimeError(f"postgres did not accept connections in {timeout_s:.0f} s:\n{tail}")
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def new_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown (SIGTERM waits for every client)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.base, ignore_errors=True)
