"""Partner push figures, on a real broker, with real HTTP partners in their own process.

1. 20 partner endpoints (aiohttp, one process, one port each) that verify every signature
   with ``standardwebhooks`` and note when each delivery arrived.
2. ``newswire webhooks run`` in its own process, every partner subscribed to everything.
3. Throughput: ``--backlog`` articles published before the pusher starts; deliveries/s to the
   20 partners from the first delivery to the last.
4. Latency: for each of ``--rates`` (articles/s; 100 by default, and 40, which one pusher
   process keeps up with on a 2-core machine) for ``--seconds`` s, each article fanned out to
   the 20 partners: publish (just before the producer's send) → partner received, p50/p99/max.
5. Peers: the broker's own produce → consume round trip at 100 messages/s, and a bare aiohttp
   client posting a signed body to the same partners (the HTTP ceiling), in the same run.

6. Fan-out (``--fanout N``, 10,000 by default; 0 leaves it out): N partners on loopback, each
   its own address (127.x.y.z, so its own host and connections: see
   :mod:`bench.fanout_partners`), answering in 80 ms ± 50 %, one in 50 (2 %) in 10 s; one
   flash, then a story every ``--every`` s (``--stories`` in all): for each story, publish →
   received by the fast partners p50/p95/max (the max is when every fast one had it),
   deliveries/s, the pusher's CPU seconds and peak RSS, and how the slow partners' attempts
   were recorded (their 10 s answers within the 15 s timeout must be ``delivered``).
   ``--pushers 2 --state postgresql``: two pushers sharing a PostgreSQL state (a server started
   for the run, as the tests start it), the flash published once they share the partners.
   ``BENCH_PROFILE=file`` samples the (first) pusher with py-spy (``pip install py-spy``) into
   ``file`` (collapsed stacks), without pausing it.

The events are sealed as newswire's producer seals what it cleaned (:mod:`newswire.seal`), so the
pusher's consume loop skips their cleaning, as in an installation with ``NEWSWIRE_CLEAN_KEY``.

Run: ``.venv/bin/python -m bench.push``. Bounded: at most ``--backlog`` + Σ rate × seconds
articles, and every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import aiohttp
from aiohttp import web
from kafka import TopicPartition
from kafka.errors import KafkaError
from standardwebhooks import Webhook

from bench import fanout_partners
from bench.harness import bench_settings, percentile, print_table, progress, temporary_broker
from newswire import bus, corpus, topics
from newswire.broker import free_port
from newswire.config import Settings
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import outbox, payloads, signing, store
from newswire.consumers.webhooks.config import parse_cidrs

PARTNERS = 20


# --- the partners' process -------------------------------------------------------------------

def serve_partners(count: int, secret: str, out: Path) -> None:
    """Run ``count`` endpoints, each on a port of its own that the system picks (so that nothing
    takes it between a pick and the bind), say ``ready <port>,<port>,…``, serve until SIGTERM,
    then write ``event_id port received_at verified`` lines."""
    webhook = Webhook(secret)
    seen: list[tuple[str, int, float, bool]] = []

    def endpoint(n: int):
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            at = time.time()
            try:
                webhook.verify(body, dict(request.headers), json_parse=False)
                ok = True
            except Exception:
                ok = False
            seen.append((request.headers.get("webhook-id", "?"), n, at, ok))
            return web.Response(status=204)
        return receive

    async def main() -> None:
        runners = []
        for n in range(count):
            app = web.Application()
            app.router.add_post("/hook", endpoint(n))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            ports.append(runner.addresses[0][1])
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", ",".join(map(str, ports)), flush=True)
        await stop.wait()
        for runner in runners:
            await runner.cleanup()

    ports: list[int] = []
    asyncio.run(main())
    out.write_text("".join(f"{i} {ports[n]} {at:.6f} {int(ok)}\n" for i, n, at, ok in seen))


# --- the bench -------------------------------------------------------------------------------

def delivered(settings: Settings) -> int:
    db = store.connect(settings, synchronous="NORMAL")
    try:
        return db.execute("SELECT count(*) FROM deliveries WHERE status = 'delivered'").fetchone()[0]
    finally:
        db.close()


def wait_delivered(settings: Settings, total: int, deadline_s: float, desc: str) -> None:
    deadline = time.monotonic() + deadline_s
    with progress(total=total, desc=desc, unit="delivery") as bar:
        while (done := delivered(settings)) < total and time.monotonic() < deadline:
            bar.update(done - bar.n)
            time.sleep(0.2)
        bar.update(delivered(settings) - bar.n)


def publish_steady(settings: Settings, events: list[dict], rate: float) -> dict[str, float]:
    """Publish at ``rate`` events/s; return each event id's publish time."""
    kafka = bus.producer(settings)
    sent: dict[str, float] = {}
    start = time.monotonic()
    for n, event in enumerate(progress(events, desc=f"publish {rate:g}/s", unit="article")):
        pause = start + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sent[event["event_id"]] = time.time()
        bus.send_event(kafka, settings.topics.articles, event, clean_key=settings.clean_key)
    kafka.flush(timeout=60)
    kafka.close()
    return sent


def broker_round_trip(settings: Settings, n: int, rate: float) -> list[float]:
    """Produce → consume round trip (ms) of ``n`` small messages at ``rate``/s on a fresh topic."""
    topic = f"bench-rtt-{uuid.uuid4().hex[:6]}"
    topics.ensure(settings, [topics.TopicSpec(topic, 1)])
    reader = bus.consumer(settings, None)
    reader.assign([TopicPartition(topic, 0)])
    reader.seek_to_end()
    reader.poll(timeout_ms=200)
    kafka = bus.producer(settings)
    trips: list[float] = []
    start = time.monotonic()
    deadline = start + n / rate + 30
    sent = 0
    while len(trips) < n and time.monotonic() < deadline:
        if sent < n and time.monotonic() >= start + sent / rate:
            kafka.send(topic, value=repr(time.time()).encode())
            kafka.flush()
            sent += 1
        for records in reader.poll(timeout_ms=2).values():
            now = time.time()
            trips.extend((now - float(r.value)) * 1000 for r in records)
    kafka.close()
    reader.close()
    return trips


async def bare_client(urls: list[str], body: bytes, headers: dict[str, str], n: int, concurrency: int) -> float:
    """The ceiling: a bare aiohttp client posting one signed body ``n`` times over the same
    partners with the same concurrency (no outbox, no signing per request); returns posts/s."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        left = n

        async def lane(url: str) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with client.post(url, data=body, headers=headers) as answer:
                    await answer.read()

        started = time.perf_counter()
        await asyncio.gather(*(lane(url) for url in urls for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def pusher_process(settings: Settings, log_path: Path, **env: str) -> subprocess.Popen:
    """``newswire webhooks run`` in its own process (under ``BENCH_PUSHER_PREFIX``, if set)."""
    env = {**os.environ, **settings.to_env(), "NEWSWIRE_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8", **env}
    return subprocess.Popen([sys.executable, *os.environ.get("BENCH_PUSHER_PREFIX", "").split(), "-m",
                             "newswire.cli", "--log-level", "WARNING", "webhooks", "run"],
                            env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def process_figures(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS (MiB) of a running process and its children (a
    pusher's Kafka side runs in a child process: :mod:`newswire.consumers.webhooks.queueing`),
    from /proc; the peak RSS is the sum of each process's own peak (:func:`each_process`)."""
    cpu, peaks = each_process(pid)
    return cpu, sum(peaks)


def each_process(pid: int) -> tuple[float, list[float]]:
    """CPU seconds of a running process and its children, and the peak RSS (MiB) of each, the
    process first, from /proc."""
    processes = [pid, *children(pid)]
    cpu = 0.0
    for one in processes:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu, [next(int(line.split()[1]) for line in Path(f"/proc/{one}/status").read_text().splitlines()
                      if line.startswith("VmHWM:")) / 1024 for one in processes]


def children(pid: int) -> list[int]:
    """The running child processes of ``pid`` (Linux)."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def wait_joined(settings: Settings, group: str, deadline_s: float) -> None:
    """Until consumer group ``group`` is stable with partitions assigned (a pusher has joined)."""
    admin = topics.admin(settings)
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            try:
                found = admin.describe_groups([group]).get(group, {})
            except KafkaError:  # no coordinator for a group nobody has joined yet
                found = {}
            if found.get("group_state") == "Stable" and any(m.get("member_assignment") for m in found.get("members", ())):
                return
            time.sleep(0.2)
    finally:
        admin.close()


def cpu_per_delivery(pid: int, cpu_at: float, deliveries: int) -> float:
    """The process's CPU-ms per delivery since it had used ``cpu_at`` CPU seconds."""
    return (process_figures(pid)[0] - cpu_at) * 1000 / max(1, deliveries)


def py_spy() -> str | None:
    """The py-spy program: on the PATH or beside this Python (None if neither has it)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def profile(pusher: subprocess.Popen, run: str) -> subprocess.Popen | None:
    """With ``BENCH_PROFILE=prefix``: py-spy samples the pusher and its Kafka side (without pausing them) into
    ``prefix-<run>.txt``, collapsed stacks; it stops with the pusher."""
    if not (prefix := os.environ.get("BENCH_PROFILE")):
        return None
    return subprocess.Popen([py_spy(), "record", "--nonblocking", "--rate", "100", "--format", "raw",
                             "--subprocesses", "-o", f"{prefix}-{run}.txt", "--pid", str(pusher.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def state_database(state: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database's URL (a server started for the run) for ``postgresql``, None for ``sqlite``."""
    if state == "sqlite":
        yield None
        return
    from tests.postgres_server import LocalPostgres  # the server the tests start (Debian's binaries)
    postgres = LocalPostgres().start()
    try:
        yield postgres.new_database()
    finally:
        postgres.stop()


def wait_leases(settings: Settings, count: int, pushers: int, deadline_s: float) -> list[int]:
    """On a shared state, until ``pushers`` pushers hold every one of ``count`` partners, each
    at least nine tenths of its share; returns the partners each holds."""
    deadline = time.monotonic() + deadline_s
    held: list[int] = []
    while time.monotonic() < deadline:
        db = store.connect(settings)
        try:
            held = [n for (n,) in db.execute("SELECT count(*) FROM partner_leases l JOIN pushers p ON p.id = l.owner"
                                             " WHERE l.expires_at > ? GROUP BY l.owner ORDER BY 1 DESC",
                                             (time.time(),))]
        finally:
            db.close()
        if len(held) == pushers and sum(held) == count and held[-1] >= 0.9 * count / pushers:
            return held
        time.sleep(0.5)
    raise SystemExit(f"the {pushers} pushers did not share the {count:,} partners within {deadline_s:.0f} s: {held}")


def fanout(count: int, stories: int, every_s: float, *, pushers: int = 1, state: str = "sqlite") -> None:
    """Bench 6: one flash then a story every ``every_s`` s to ``count`` partners, from
    ``pushers`` processes sharing a ``state`` (several: PostgreSQL)."""
    slow_every = 50
    port = free_port()
    secret = signing.new_secret()
    with temporary_broker() as broker, state_database(state) as state_url, \
            tempfile.TemporaryDirectory(prefix="newswire-bench-fanout-") as tmp:
        home = Path(tmp)
        settings = replace(bench_settings(broker, home / "home", sealed=True), state_url=state_url)
        received_file = home / "received.txt"
        partners_proc = subprocess.Popen([sys.executable, "-m", "bench.push", "--serve-fanout",
                                          str(port), str(count), str(slow_every), str(received_file)],
                                         stdout=subprocess.PIPE, text=True)
        assert partners_proc.stdout.readline().strip() == "ready"
        hosts = [fanout_partners.address(n) for n in range(count)]
        slow = set(hosts[::slow_every])
        db = store.connect(settings)
        with outbox.transaction(db):  # one commit for them all
            for n, host in enumerate(progress(hosts, desc="partners", unit="partner")):
                registry.add(db, registry.Partner(id=f"p{n:05d}", name=f"Partner {n}", url=f"http://{host}:{port}/hook",
                                                  secrets=(secret,)), allow=parse_cidrs("127.0.0.0/8"))
        db.close()
        events = list(corpus.stream(stories, seed=31, versions=False, body_bytes=3000))
        running = [pusher_process(settings, home / f"pusher-{n}.log", NEWSWIRE_WEBHOOK_LEASE="5")
                   for n in range(pushers)]
        profiler = profile(running[0], "fanout")
        published: dict[str, float] = {}
        held: list[int] = []
        try:
            wait_joined(settings, "newswire-webhooks", 120)  # the flash measures sending, not the join
            if state_url:
                held = wait_leases(settings, count, pushers, 300)
            kafka = bus.producer(settings)
            start = time.monotonic()
            for n, event in enumerate(events):
                time.sleep(max(0.0, start + n * every_s - time.monotonic()))
                published[event["event_id"]] = time.time()
                bus.send_event(kafka, settings.topics.articles, event, clean_key=settings.clean_key)
                kafka.flush(timeout=60)
            kafka.close()
            wait_delivered(settings, count * stories, 300, "fan-out")
            figures = [(cpu, sum(peaks), peaks) for cpu, peaks in (each_process(pusher.pid) for pusher in running)]
        finally:
            for pusher in running:
                pusher.send_signal(signal.SIGTERM)
            for pusher in running:
                pusher.wait(120)
            if profiler is not None:
                profiler.wait(60)
            partners_proc.send_signal(signal.SIGTERM)
            partners_proc.wait(120)
        arrivals: dict[str, list[float]] = defaultdict(list)
        first_arrival: dict[tuple[str, str], float] = {}
        for line in received_file.read_text().splitlines():
            event_id, host, at = line.split()
            if host not in slow and event_id in published and (event_id, host) not in first_arrival:
                first_arrival[event_id, host] = float(at)
                arrivals[event_id].append(float(at) - published[event_id])
        db = store.connect(settings, synchronous="NORMAL")
        outcomes = db.execute("SELECT outcome, substr(coalesce(error, ''), 1, 40), count(*) FROM attempts"
                              " GROUP BY 1, 2").fetchall()
        slow_ids = tuple(f"p{n:05d}" for n in range(0, count, slow_every))
        slow_outcomes = db.execute(
            f"SELECT outcome, count(*), max(duration_ms) FROM attempts WHERE partner_id IN"
            f" ({','.join('?' * len(slow_ids))}) GROUP BY outcome", slow_ids).fetchall()
        done = db.execute("SELECT count(*), min(created_at), max(delivered_at) FROM deliveries"
                          " WHERE status = 'delivered'").fetchone()
        queued_at = dict(db.execute("SELECT event_id, max(created_at) FROM deliveries GROUP BY event_id").fetchall())
        db.close()
        fast = count - len(slow)
        rows = []
        for n, event in enumerate(events):
            got = sorted(arrivals[event["event_id"]])
            what = "flash" if n == 0 else f"story {n} (+{n * every_s:g} s)"
            rows.append((f"{what}: publish -> {fast:,} fast partners",
                         f"p50 {percentile(got, 50):.2f} s  p95 {percentile(got, 95):.2f} s  max {got[-1]:.2f} s"
                         if got else "none arrived", f"{len(got):,} of {fast:,} had it; queued for all after "
                         f"{queued_at.get(event['event_id'], 0) - published[event['event_id']]:.2f} s"))
        span = done[2] - min(published.values())
        rows.append(("deliveries (fast and slow)", f"{done[0]:,} in {span:.1f} s = {done[0] / span:,.0f}/s",
                     f"{count:,} partners x {stories} stories"))
        rows.append((f"slow partners' attempts ({len(slow)}, answering in 10 s)",
                     ", ".join(f"{o}: {c} (longest {d / 1000:.1f} s)" for o, c, d in slow_outcomes),
                     "timeout 15 s"))
        failed = [f"{o} {e[:60]}: {c}" for o, e, c in outcomes if o != "delivered"]
        rows.append(("attempts not delivered", "; ".join(failed) or "none", ""))
        connections = int(received_file.with_suffix(".connections").read_text())
        rows.append(("connections the pusher opened", f"{connections:,}", f"{count:,} partners"))
        rows.append(("pusher CPU, peak RSS (sending + Kafka side)" + (" (each)" if pushers > 1 else ""),
                     ", ".join(f"{cpu:.1f} CPU s, {rss:.0f} MiB ({' + '.join(f'{p:.0f}' for p in each)})"
                               for cpu, rss, each in figures),
                     f"{count:,} partners, {os.cpu_count()} cores shared"
                     + (f"; partners held {'/'.join(map(str, held))}" if held else "")))
        processes = f"{pushers} pusher process{'es' if pushers > 1 else ''} on {'PostgreSQL' if state_url else 'SQLite'}"
        print_table(f"partner fan-out (newswire webhooks run, {count:,} loopback partners, {processes})", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=300, help="articles for the throughput run")
    parser.add_argument("--rates", default="100,40", help="articles per second of each latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each latency run")
    parser.add_argument("--fanout", type=int, default=10_000, help="partners of the fan-out run (0: leave it out)")
    parser.add_argument("--stories", type=int, default=6, help="stories of the fan-out run, the first a flash")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between the fan-out run's stories")
    parser.add_argument("--no-backlog", action="store_true", help="leave the backlog and latency runs out")
    parser.add_argument("--pushers", type=int, default=1, help="pusher processes of the fan-out run (more than one:"
                                                               " --state postgresql)")
    parser.add_argument("--state", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the fan-out run's webhook state (postgresql: a server started for the run)")
    parser.add_argument("--serve-partners", nargs=3, metavar=("COUNT", "SECRET", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-fanout", nargs=4, metavar=("PORT", "COUNT", "SLOW_EVERY", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_partners:
        count, secret, out = args.serve_partners
        serve_partners(int(count), secret, Path(out))
        return
    if args.serve_fanout:
        port, count, slow_every, out = args.serve_fanout
        fanout_partners.serve(int(port), int(count), int(slow_every), Path(out))
        return
    if args.pushers > 1 and args.state != "postgresql":
        parser.error("--pushers above 1 share a PostgreSQL state: add --state postgresql")
    if os.environ.get("BENCH_PROFILE") and not py_spy():
        parser.error("BENCH_PROFILE is set but py-spy is not installed (pip install py-spy)")
    if args.fanout:
        fanout(args.fanout, args.stories, args.every, pushers=args.pushers, state=args.state)
    if not args.no_backlog:
        backlog_and_latency(args)


def backlog_and_latency(args: argparse.Namespace) -> None:
    """Benches 3-5: the backlog and latency runs beside their peers."""

    secret = signing.new_secret()
    with temporary_broker() as broker, tempfile.TemporaryDirectory(prefix="newswire-bench-push-") as tmp:
        home = Path(tmp)
        settings = bench_settings(broker, home / "home", sealed=True)
        received_file = home / "received.txt"
        partners_proc = subprocess.Popen([sys.executable, "-m", "bench.push", "--serve-partners",
                                          str(PARTNERS), secret, str(received_file)],
                                         stdout=subprocess.PIPE, text=True)
        ready, _, listed = partners_proc.stdout.readline().strip().partition(" ")
        if ready != "ready":
            raise SystemExit("the partners' process did not start (its error is above)")
        ports = [int(port) for port in listed.split(",")]
        db = store.connect(settings)
        for n, port in enumerate(ports):
            registry.add(db, registry.Partner(id=f"p{n:02d}", name=f"Partner {n}", url=f"http://127.0.0.1:{port}/hook",
                                              secrets=(secret,), concurrency=8),
                         allow=parse_cidrs("127.0.0.0/8"))
        db.close()

        events = list(corpus.stream(args.backlog, seed=21, versions=False, body_bytes=3000))
        rates = [float(r) for r in args.rates.split(",")]
        runs = [list(corpus.stream(int(rate * args.seconds), seed=22 + n, versions=False, body_bytes=3000))
                for n, rate in enumerate(rates)]
        kafka = bus.producer(settings)
        bus.publish_events(settings, kafka, events, cleaned=True)
        kafka.close()

        pusher = pusher_process(settings, home / "pusher.log")
        profiler = profile(pusher, "backlog")
        urls = [f"http://127.0.0.1:{port}/hook" for port in ports]
        cpu_ms: list[float] = []  # the pusher's CPU-ms per delivery in each run
        try:
            expected = len(events) * PARTNERS
            deadline = time.monotonic() + 120
            while (first := delivered(settings)) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            cpu_at = process_figures(pusher.pid)[0]  # started, joined its group: what follows is sending
            wait_delivered(settings, expected, 300, "backlog")
            cpu_ms.append(cpu_per_delivery(pusher.pid, cpu_at, expected - first))
            sent = []
            for rate, steady in zip(rates, runs):
                cpu_at = process_figures(pusher.pid)[0]
                sent.append(publish_steady(settings, steady, rate))
                expected += len(steady) * PARTNERS
                wait_delivered(settings, expected, 300, f"{rate:g}/s")
                cpu_ms.append(cpu_per_delivery(pusher.pid, cpu_at, len(steady) * PARTNERS))
            rss_mib = process_figures(pusher.pid)[1]
            pusher.send_signal(signal.SIGTERM)
            pusher.wait(60)
            if profiler is not None:
                profiler.wait(60)
            sample = payloads.render(events[0], "ninjs", seq=1, at=datetime.now(timezone.utc),
                                     authority=settings.authority())
            ceiling = asyncio.run(bare_client(urls, sample, signing.headers("ceiling", sample, [secret],
                                                                            content_type="application/json"),
                                              len(events) * PARTNERS, 8))
        finally:
            if pusher.poll() is None:
                pusher.send_signal(signal.SIGTERM)
                pusher.wait(60)
            partners_proc.send_signal(signal.SIGTERM)
            partners_proc.wait(60)
        trips = broker_round_trip(settings, 500, 100.0)

        lines = [line.split() for line in received_file.read_text().splitlines()]
        verified = sum(int(ok) for i, *_, ok in lines if i != "ceiling")
        lines = [line for line in lines if line[0] != "ceiling"]
        backlog_ids = {e["event_id"] for e in events}
        backlog_times = sorted(float(at) for i, _, at, _ in lines if i in backlog_ids)
        span = backlog_times[-1] - backlog_times[0]
        rows = [("deliveries to 20 partners (backlog)", f"{len(backlog_times)} in {span:.1f} s = "
                 f"{len(backlog_times) / span:,.0f}/s ({len(events)} articles x {PARTNERS})",
                 f"bare aiohttp client, same partners: {ceiling:,.0f} posts/s"),
                ("pusher CPU-ms per delivery: backlog, " + ", ".join(f"{r:g}/s" for r in rates),
                 ", ".join(f"{ms:.2f}" for ms in cpu_ms), f"peak RSS {rss_mib:.0f} MiB (sending + Kafka side processes)")]
        db = store.connect(settings, synchronous="NORMAL")
        stages = db.execute("SELECT event_id, created_at, delivered_at FROM deliveries").fetchall()
        db.close()
        for rate, published in zip(rates, sent):
            queued = sorted((c - published[i]) * 1000 for i, c, _ in stages if i in published)
            pushed = sorted((d - c) * 1000 for i, c, d in stages if i in published)
            latencies = sorted((float(at) - published[i]) * 1000 for i, _, at, _ in lines if i in published)
            rows.append((f"publish -> partner received, {rate:g} articles/s x {PARTNERS}",
                         f"p50 {percentile(latencies, 50):.0f} ms  p99 {percentile(latencies, 99):.0f} ms  "
                         f"max {latencies[-1]:.0f} ms  ({len(latencies)} deliveries)",
                         f"broker produce -> consume p50 {percentile(trips, 50):.1f} ms  "
                         f"p99 {percentile(trips, 99):.1f} ms"))
            rows.append(("  of which publish -> queued in the outbox", f"p50 {percentile(queued, 50):.0f} ms  "
                         f"p99 {percentile(queued, 99):.0f} ms", "then queued -> acknowledged: "
                         f"p50 {percentile(pushed, 50):.0f} ms  p99 {percentile(pushed, 99):.0f} ms"))
        rows.append(("signatures verified by the partners", f"{verified} of {len(lines)}", "standardwebhooks"))
        print_table("partner push (newswire webhooks run, 20 local partners, 1 pusher process)", rows)


if __name__ == "__main__":
    main()
