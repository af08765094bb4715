"""The local Apache Kafka broker, built from Apache Kafka's own jars on Maven Central.

``newswire kafka up`` (and the test suite's session fixture) use :class:`LocalBroker`:
fetch the jars once with Maven into a cache outside the repository, format KRaft storage,
start ``kafka.Kafka`` with a small heap, and wait until the broker answers an admin call.
``down`` stops exactly the process that ``up`` started (its pid file, checked against the
process's command line).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaConfigurationError, KafkaError

from newswire import logs
from newswire.config import Settings

KAFKA_VERSION = "4.3.1"
DEPLOY_DIR = Path(__file__).resolve().parent.parent / "deploy" / "kafka"
DEFAULT_HEAP = "512m"

log = logs.get(__name__)


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted, started or reached."""


def jars_dir(cache: Path) -> Path:
    return cache / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_jars(cache: Path) -> Path:
    """Fetch the broker's jars with Maven once; return the directory holding them."""
    libs = jars_dir(cache)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is needed to fetch Apache Kafka's jars; install it (apt-get install maven)")
    log.info("kafka_jars_fetch", version=KAFKA_VERSION, into=str(libs))
    libs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(DEPLOY_DIR / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise BrokerError(f"mvn dependency:copy-dependencies failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    marker.touch()
    return libs


def free_ports(count: int) -> list[int]:
    """``count`` different ports free on 127.0.0.1 now (each bound until all are chosen: ports
    chosen one at a time may come back the same)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def free_port() -> int:
    return free_ports(1)[0]


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java:
        raise BrokerError("Java 17 or newer is needed to run the broker; install a JDK")
    return str(java)


def broker_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a broker of ``bootstrap`` (``host:port[,host:port…]``) answers a describe-cluster
    admin call."""
    if not any(_listens(address, timeout_s) for address in bootstrap.split(",")):
        return False  # a cheap look first, so the admin client does not back off against closed ports
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    except KafkaConfigurationError:
        raise
    except KafkaError:
        return False
    try:
        admin.describe_cluster()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def _listens(address: str, timeout_s: float) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except (OSError, ValueError):
        return False
    return True


@dataclass
class LocalBroker:
    """One combined broker+controller KRaft node whose state lives under ``state_dir``."""

    state_dir: Path
    cache: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = DEFAULT_HEAP
    node_id: int = 1
    #: static controller voters ("1@127.0.0.1:9093,2@…") of a multi-node cluster; None: standalone
    voters: str | None = None
    cluster_id: str | None = None
    replication: int = 1
    min_insync: int = 1
    #: server properties added to (and overriding) the template's, e.g. a test cluster's
    #: ``broker.session.timeout.ms``; none by default
    extra_properties: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_settings(cls, settings: Settings, heap: str = DEFAULT_HEAP) -> "LocalBroker":
        """The local broker ``newswire kafka up`` runs for these settings: its port is the
        bootstrap address's, its state under ``settings.home``."""
        port = int(settings.bootstrap_servers.split(",")[0].rpartition(":")[2])
        return cls(state_dir=settings.home / f"kafka-{port}", cache=settings.cache,
                   port=port, controller_port=port + 1, heap=heap)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "newswire-broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.state_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "kafka.out"

    def _classpath(self) -> str:
        return str(ensure_jars(self.cache) / "*")

    def _java_command(self, main_class: str, *args: str) -> list[str]:
        return [
            _java(), f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.state_dir}",
            f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.yaml'}",
            "-cp", self._classpath(), main_class, *args,
        ]

    def _write_properties(self) -> None:
        template = (DEPLOY_DIR / "server.properties.template").read_text()
        quorum = (f"controller.quorum.voters={self.voters}" if self.voters
                  else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}")
        text = template.format(
            port=self.port, controller_port=self.controller_port, data_dir=self.data_dir,
            node_id=self.node_id, quorum=quorum, replication=self.replication, min_insync=self.min_insync)
        if self.extra_properties:  # Kafka takes the last of a repeated key
            text += "\n" + "".join(f"{key}={value}\n" for key, value in self.extra_properties.items())
        self.properties_file.write_text(text)

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        mode = [] if self.voters else ["--standalone"]
        result = subprocess.run(
            self._java_command("kafka.tools.StorageTool", "format", *mode,
                               # "=": an id may start with "-", which would read as an option
                               f"--cluster-id={self.cluster_id or _kafka_uuid()}", "-c", str(self.properties_file)),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise BrokerError(f"kafka.tools.StorageTool format failed:\n{result.stdout}{result.stderr}")

    def running_pid(self) -> int | None:
        """The pid of the broker this state directory started, if that process still runs."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return None
        # Only a kafka.Kafka process started on our own properties file is ours.
        if b"kafka.Kafka" in cmdline and str(self.properties_file).encode() in cmdline:
            return pid
        return None

    def start(self, timeout_s: float = 90.0, wait: bool = True) -> str:
        """Start the broker (if this state directory's broker is not running) and wait for it.

        ``wait=False`` returns once the process runs: the nodes of a cluster answer only
        when a quorum of them is up, so they are started first and awaited together.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.running_pid() is None:
            self._write_properties()
            self._format_storage()
            with open(self.log_file, "ab") as out:
                process = subprocess.Popen(
                    self._java_command("kafka.Kafka", str(self.properties_file)),
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            self.pid_file.write_text(str(process.pid))
            log.info("kafka_starting", pid=process.pid, bootstrap=self.bootstrap, state_dir=str(self.state_dir))
            self._process = process
        if wait:
            self.wait_ready(timeout_s)
        return self.bootstrap

    def alive(self) -> bool:
        # The process we started is watched through its handle: its /proc entry can be read
        # while the JVM is still replacing the launcher, which would look like another process.
        process = getattr(self, "_process", None)
        if process is not None:
            return process.poll() is None
        return self.running_pid() is not None

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the broker answers an admin call, failing at once if its process ends."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise BrokerError(f"the broker exited during start-up; see {self.log_file}:\n{self._tail()}")
            if broker_answers(self.bootstrap):
                log.info("kafka_ready", bootstrap=self.bootstrap)
                return
            time.sleep(0.5)
        raise BrokerError(f"the broker did not answer within {timeout_s:.0f} s; see {self.log_file}:\n{self._tail()}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker this state directory started; False when none was running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.running_pid() is not None:
            time.sleep(0.2)
        if self.running_pid() is not None:
            log.warning("kafka_kill", pid=pid, reason=f"no exit within {timeout_s:.0f} s of SIGTERM")
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        log.info("kafka_stopped", pid=pid)
        return True

    def kill(self) -> None:
        """SIGKILL the broker, for fault tests: no clean shutdown."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def local_cluster(state_dir: Path, cache: Path, size: int = 3, heap: str = "384m") -> list[LocalBroker]:
    """``size`` combined broker+controller nodes forming one KRaft cluster (static voters),
    every topic with ``size`` replicas and ``size - 1`` in sync. Not started."""
    chosen = free_ports(2 * size)
    ports = list(zip(chosen[::2], chosen[1::2]))
    voters = ",".join(f"{i + 1}@127.0.0.1:{controller}" for i, (_, controller) in enumerate(ports))
    cluster_id = _kafka_uuid()
    return [LocalBroker(state_dir=state_dir / f"node-{i + 1}", cache=cache, port=port, controller_port=controller,
                        heap=heap, node_id=i + 1, voters=voters, cluster_id=cluster_id,
                        replication=size, min_insync=size - 1)
            for i, (port, controller) in enumerate(ports)]


def _reap(pid: int) -> None:
    """Wait for a child we started ourselves, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.1)


def _kafka_uuid() -> str:
    """A KRaft cluster id: a random UUID in Kafka's URL-safe base64 form."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
