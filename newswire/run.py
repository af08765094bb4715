"""``newswire run``: the whole system on one machine, under one supervisor.

It brings the broker up (or uses the one that answers), ensures the topics, registers a demo
partner, starts every service in its own process (ingest API, feed server with its consumer,
NewsML-G2 drop folder, partner pusher, archive, status page, the demo partner's endpoint),
publishes the fixture story and a generated corpus, prints where to look, and on Ctrl-C stops
every service cleanly (consumers commit their offsets) and then the broker it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click

from newswire import broker as local_broker
from newswire import bus, corpus, files, locks, logs, topics
from newswire.config import Settings
from newswire.supervisor import Service, Supervisor, newswire_command

log = logs.get(__name__)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_PAGE = ROOT / "deploy" / "demo" / "tml-idlib-page.html"
FIXTURE_ID = "tml-idlib-2020-02-18"
#: the Media Topics an editor gives the fixture story (the page carries none): armed conflict,
#: peace process, diplomacy, refugees and internally displaced people
FIXTURE_TOPICS = ("medtop:20000056", "medtop:20000073", "medtop:20000639", "medtop:20000645")
DEMO_PARTNER = "demo"
DEMO_SECRET = "whsec_ZGVtby1wYXJ0bmVyLXNlY3JldC1mb3ItbmV3c3dpcmU="  # the demo's own, printed
DEMO_PROVIDER = "The Media Line"  # the agency of the demo's stories (an installation names its own)
DEMO_AUTHORITY = "newswire.example.org"  # the domain of the demo's item ids (an installation sets its own)
CLEAN_KEY_FILE = "clean.key"  # the demo's cleaning key in its home, when NEWSWIRE_CLEAN_KEY is not set


@dataclass(frozen=True)
class Ports:
    ingest: int = 8080
    feeds: int = 8081
    status: int = 8088
    partner_api: int = 8089
    demo_partner: int = 8090
    #: consumers serve /metrics on metrics_base + 1, + 2, …; 0: not served
    metrics_base: int = 9100


CONSUMERS_WITH_METRICS = ("feeds", "newsml-drop", "webhooks", "archive")


def services(settings: Settings, ports: Ports, ingest_token: str, status_token: str = "demo-status-token"
             ) -> list[Service]:
    drop = settings.home / "drop"
    return [
        Service("demo-partner", newswire_command("webhooks", "demo-partner", "--port", str(ports.demo_partner),
                                                 "--secret", DEMO_SECRET)),
        Service("ingest", newswire_command("ingest", "serve", "--port", str(ports.ingest)),
                env={"NEWSWIRE_INGEST_TOKENS": ingest_token}),
        Service("feeds", newswire_command("feeds", "serve", "--port", str(ports.feeds))),
        Service("newsml-drop", newswire_command("newsml", "drop", "--dir", str(drop))),
        Service("webhooks", newswire_command("webhooks", "run")),
        Service("archive", newswire_command("archive", "run")),
        Service("status", newswire_command("status", "serve", "--port", str(ports.status),
                                           "--feeds-url", f"http://127.0.0.1:{ports.feeds}"),
                env={"NEWSWIRE_STATUS_TOKEN": status_token}),
        Service("partner-api", newswire_command("partner-api", "serve", "--port", str(ports.partner_api))),
    ]


def listening_ports(ports: Ports) -> dict[str, int]:
    """Every port the services of ``run`` listen on, by what listens there."""
    return {"ingest": ports.ingest, "feeds": ports.feeds, "status": ports.status,
            "partner API": ports.partner_api, "demo partner": ports.demo_partner,
            **{f"{name} metrics": port for name, port in metrics_ports(ports).items()}}


def taken_ports(ports: Ports) -> dict[str, int]:
    """The ports of :func:`listening_ports` that another process already listens on."""
    taken = {}
    for name, port in listening_ports(ports).items():
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the services bind
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                taken[name] = port
    return taken


def hold_run_lock(settings: Settings, ports: Ports) -> locks.Lock:
    """One ``newswire run`` per installation: the lock ``<home>/run.lock`` holds its pid and ports,
    and the ports must be free; otherwise ClickException says in one line what is in the way."""
    try:
        lock = locks.hold_lock(settings.home / "run.lock", ports=asdict(ports))
    except locks.LockHeld as exc:
        used = ", ".join(f"{name} {port}" for name, port in (exc.holder.get("ports") or {}).items())
        raise click.ClickException(f"newswire run already runs on {settings.home} (pid {exc.pid}; ports: {used}); "
                                   "stop it first (Ctrl-C or kill it)") from None
    taken = taken_ports(ports)
    if taken:
        lock.close()
        raise click.ClickException("port " + ", ".join(f"{port} ({name})" for name, port in taken.items())
                                   + " already in use by another process; choose others (newswire run --help)")
    return lock


def metrics_ports(ports: Ports) -> dict[str, int]:
    if not ports.metrics_base:
        return {}
    return {name: ports.metrics_base + i for i, name in enumerate(CONSUMERS_WITH_METRICS, start=1)}


def _newswire(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(newswire_command(*args), capture_output=True, text=True,
                          env=_env(settings))


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **_demo_variables(settings)}


def with_clean_key(settings: Settings) -> Settings:
    """``settings`` with a cleaning key: ``NEWSWIRE_CLEAN_KEY``, or one made at the first run and
    kept in the home (readable by its owner only), so that the demo's consumers trust what its
    producers cleaned (:mod:`newswire.seal`) instead of cleaning every event again."""
    if settings.clean_key:
        return settings
    path = settings.home / CLEAN_KEY_FILE
    if not path.is_file():
        files.write_atomically(path, secrets.token_hex(32).encode())
    return replace(settings, clean_key=path.read_text().strip())


def _demo_variables(settings: Settings) -> dict[str, str]:
    """What every command and service of the demo is told: its settings (broker, home, topics),
    with the demo's agency and id authority."""
    return replace(settings, provider=DEMO_PROVIDER, id_authority=DEMO_AUTHORITY).to_env()


def register_demo_partner(settings: Settings, ports: Ports) -> None:
    url = f"http://127.0.0.1:{ports.demo_partner}/webhook"
    if _newswire(settings, "partners", "show", DEMO_PARTNER).returncode == 0:
        result = _newswire(settings, "partners", "update", DEMO_PARTNER, "--url", url)
    else:
        result = _newswire(settings, "partners", "add", DEMO_PARTNER, "--name", "Demo partner", "--url", url,
                           "--secret", DEMO_SECRET, "--allow-cidrs", "127.0.0.1/32")
    if result.returncode != 0:
        raise click.ClickException(f"could not register the demo partner: {result.stderr.strip()}")


def publish_demo_content(settings: Settings, corpus_size: int) -> None:
    """The fixture story (once: publishing is idempotent, a second run is told it is already
    published) and a generated corpus."""
    topics = [option for topic in FIXTURE_TOPICS for option in ("--subject", topic)]
    result = _newswire(settings, "publish", "--article-id", FIXTURE_ID, *topics, str(FIXTURE_PAGE))
    if result.returncode != 0:
        raise click.ClickException(f"publishing the fixture story failed: {result.stderr.strip()}")
    click.echo(result.stdout.strip())
    kafka = bus.producer(settings)
    try:
        bus.publish_events(settings, kafka, corpus.stream(corpus_size, seed=2026))
    finally:
        kafka.close()
    click.echo(f"published a generated corpus of {corpus_size} events")


def where_to_look(settings: Settings, ports: Ports, supervisor: Supervisor, ingest_token: str,
                  status_token: str = "demo-status-token") -> str:
    feeds = f"http://127.0.0.1:{ports.feeds}"
    return "\n".join([
        "",
        "newswire is running. Where to look:",
        f"  feeds         {feeds}/feeds/all.rss  {feeds}/feeds/all.atom  {feeds}/feeds/all.newsml  {feeds}/feeds/all.json",
        f"  fixture story {feeds}/items/{FIXTURE_ID}?format=newsml",
        f"  status page   http://127.0.0.1:{ports.status}/  (operator sign-in token: {status_token})",
        f"  partner API   http://127.0.0.1:{ports.partner_api}/  (a token for the demo partner: "
        f"newswire partners token issue {DEMO_PARTNER})",
        *[f"  metrics       {name}: http://127.0.0.1:{port}/metrics" for name, port in metrics_ports(ports).items()],
        f"  ingest API    POST http://127.0.0.1:{ports.ingest}/v1/articles  (Authorization: Bearer {ingest_token})",
        f"  demo partner  {supervisor.log_path(next(s for s in supervisor.services if s.name == 'demo-partner'))}",
        f"  drop folder   {settings.home / 'drop'}",
        f"  service logs  {supervisor.log_dir}",
        "Ctrl-C stops everything cleanly.",
    ])


@click.command("run")
@click.option("--corpus", "corpus_size", default=200, show_default=True, help="Generated events to publish.")
@click.option("--for", "duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@click.option("--ingest-token", envvar="NEWSWIRE_DEMO_INGEST_TOKEN", default="demo-ingest-token", show_default=True)
@click.option("--status-token", envvar="NEWSWIRE_DEMO_STATUS_TOKEN", default="demo-status-token", show_default=True,
              help="The status page's operator token (its actions: pause, redrive, resend, backfill).")
@click.option("--ingest-port", default=Ports.ingest, show_default=True)
@click.option("--feeds-port", default=Ports.feeds, show_default=True)
@click.option("--status-port", default=Ports.status, show_default=True)
@click.option("--partner-port", default=Ports.demo_partner, show_default=True)
@click.option("--partner-api-port", default=Ports.partner_api, show_default=True,
              help="The partners' own API and page.")
@click.option("--metrics-base-port", default=Ports.metrics_base, show_default=True,
              help="Consumers serve /metrics on the ports after this one (0: none).")
@click.pass_context
def run(ctx: click.Context, corpus_size: int, duration: float | None, ingest_token: str, status_token: str,
        ingest_port: int,
        feeds_port: int, status_port: int, partner_port: int, partner_api_port: int, metrics_base_port: int) -> None:
    """Run the whole system: broker, topics, every service, a demo partner, demo content."""
    settings = with_clean_key(ctx.find_root().obj)
    ports = Ports(ingest=ingest_port, feeds=feeds_port, status=status_port, partner_api=partner_api_port,
                  demo_partner=partner_port, metrics_base=metrics_base_port)
    lock = hold_run_lock(settings, ports)
    broker = local_broker.LocalBroker.for_settings(settings)
    started_broker = not local_broker.broker_answers(settings.bootstrap_servers)
    if started_broker:
        click.echo(f"starting Kafka at {settings.bootstrap_servers} (first run fetches its jars with Maven)…")
        try:
            broker.start()
        except local_broker.BrokerError as exc:
            raise click.ClickException(str(exc)) from exc
    for name, outcome in topics.ensure(settings).items():
        click.echo(f"topic {name}: {outcome}")
    register_demo_partner(settings, ports)

    supervisor = Supervisor(services(settings, ports, ingest_token, status_token), log_dir=settings.home / "logs")
    for service in supervisor.services:
        service.env.update(_demo_variables(settings))
        if service.name in metrics_ports(ports):
            service.env["NEWSWIRE_METRICS_PORT"] = str(metrics_ports(ports)[service.name])
    signal.signal(signal.SIGINT, lambda *_: supervisor.stop())
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    supervisor.start_all()
    try:
        publish_demo_content(settings, corpus_size)
        click.echo(where_to_look(settings, ports, supervisor, ingest_token, status_token))
        sys.stdout.flush()  # shown at once also when stdout is a file or a pipe
        supervisor.watch(duration)
    finally:
        click.echo("stopping: every service commits its offsets and exits…")
        supervisor.shutdown()
        if started_broker:
            broker.stop()
        lock.close()
        click.echo("stopped")
