"""Archive and replay figures, on a real broker, with a real partner endpoint in its own process.

1. ``--events`` generated events (``newswire.corpus.stream``, ``--body-bytes`` bodies) are
   published to a throw-away broker.
2. Archive write: the archive consumer (the real ``EventLoop`` + ``Archiver``: Avro blocks,
   fsync, SQLite index, Kafka commits) from the first event to the last; peer in the same
   run: the same consume loop (the same consumer options) with a handler that does nothing
   (decode only). The events are sealed as newswire's producer seals them (newswire.seal).
   Both also after their first batch (the group join and first fetch left out) and in CPU
   per event.
3. Replay from Kafka to a local partner: ``newswire replay --partner --send`` as the CLI runs
   it (a reading process reads, decodes and renders ahead → the replay's process queues in the
   webhooks outbox → a sending process runs the pusher's dispatcher → HTTP), from start until
   the partner has acknowledged every delivery; the partner is an aiohttp server on 127.0.0.1
   in its own process that counts posts. Also: the replay alone (queueing in the outbox), and
   the CPU per event of each of the four processes (on two cores their sum bounds the rate).
4. Replay from the archive to a second partner, the same way.
5. Replay from the archive to a third partner in the same format, from the renders the one
   before kept (``<home>/replay/renders.sqlite3``; the first two start without it, so each
   renders every event): another partner's backfill.

Peak memory is this process's peak RSS after each step (it only grows; the events are
generated and published by a child process). Run:
``.venv/bin/python -m bench.replay`` (``--events 100000`` by default; a few minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from aiohttp import web

from bench.harness import Stopwatch, bench_settings, peak_rss_mib, print_table, progress, temporary_broker
from newswire import bus, corpus, logs
from newswire.broker import free_port
from newswire.config import Settings
from newswire.consumers.archive.archiver import CONSUMER_OPTIONS, GROUP, Archiver, default_root
from newswire.consumers.replay.checkpoint import Checkpoint
from newswire.consumers.replay.readahead import ReadAhead
from newswire.consumers.webhooks.payloads import kept_renders
from newswire.consumers.replay.runner import replay
from newswire.consumers.replay.sources import ArchiveSource, KafkaSource, Source
from newswire.consumers.replay.sender import PartnerSender
from newswire.consumers.replay.targets import PartnerTarget
from newswire.consumers.replay.window import Window
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.config import parse_cidrs
from newswire.consumers.webhooks.signing import new_secret


def serve_partner(port: int) -> None:
    """A partner endpoint that answers 204 to every POST and tells its count on GET /count."""
    count = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal count
        await request.read()
        count += 1
        return web.Response(status=204)

    async def tell(request: web.Request) -> web.Response:
        return web.Response(text=str(count))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", receive)
        app.router.add_get("/count", tell)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


def publish(settings: Settings, n: int, body_bytes: int) -> None:
    kafka = bus.producer(settings, linger_ms=50, batch_size=512 * 1024)
    for event in progress(corpus.stream(n, seed=31, body_bytes=body_bytes), total=n, desc="publish", unit="event"):
        bus.send_event(kafka, settings.topics.articles, event, clean_key=settings.clean_key)
    kafka.flush(timeout=120)
    kafka.close()


@contextlib.contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """cProfile statistics of what runs inside (this thread only) written to ``path`` (None: none)."""
    if path is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) a running process has spent so far (None: this one)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Consumed:
    """A consume from the first event to the last: the rate after its first batch as well (the
    group join and the first fetch, which weigh more in a quicker consume, left out), and the
    CPU it took per event."""

    seconds: float
    #: events handled after the first batch, and the seconds they took
    steady: tuple[int, float]
    cpu_ms: float


def consume(settings: Settings, group: str, handle, expected, desc: str, write_behind=None,
            overrides: dict | None = None, profile: Path | None = None) -> Consumed:
    started, cpu_before = time.perf_counter(), cpu_s()
    loop = bus.EventLoop(settings, group, handle, write_behind=write_behind, name=group,
                         consumer_overrides=overrides)
    deadline = time.monotonic() + 900
    first: tuple[int, float] | None = None
    with progress(total=expected(), desc=desc, unit="event") as bar, profiled(profile):
        while loop.handled < expected() and time.monotonic() < deadline:
            loop.poll_once(timeout_ms=500)
            if first is None and loop.handled:
                first = (loop.handled, time.perf_counter())
            bar.update(loop.handled - bar.n)
        loop.settle()  # the last batch's write
    ended = time.perf_counter()
    loop.close()
    return Consumed(ended - started, (loop.handled - first[0], ended - first[1]),
                    (cpu_s() - cpu_before) / max(1, loop.handled) * 1e3)


@dataclass
class Replayed:
    queue_s: float
    total_s: float
    posts: int
    #: CPU seconds from the start of the replay to the last post: process → seconds
    cpu: dict[str, float]
    #: renders the reading process made, and kept ones it used
    rendered: tuple[int, int]


def replay_to(settings: Settings, partner: str, make: Callable[[], Source], count_url: str, partner_pid: int,
              profile: Path | None = None) -> Replayed:
    """Replay ``make()``'s events to ``partner`` with delivery, as ``newswire replay --send`` does
    (read and rendered ahead in a process of its own, sent from another). ``profile``: the
    replay loop's cProfile statistics are written there (the loop's thread only)."""
    target = PartnerTarget(settings, partner)
    source = ReadAhead(make, target.prerender)
    checkpoint = Checkpoint.open(settings.home, {"bench": partner}, restart=True)
    sender = PartnerSender(settings, partner)
    before = int(urllib.request.urlopen(count_url).read())
    cpu_before = {"replay": cpu_s(), "sending": cpu_s(sender.pid), "partner endpoint": cpu_s(partner_pid)}
    try:
        with Stopwatch() as total:
            with profiled(profile):
                summary = replay(source, target, checkpoint, after_commit=sender.wake, progress=sys.stderr.isatty())
            queued = len(target.queued_ids)
            deadline = time.monotonic() + 1800
            with progress(total=queued, desc=f"delivered to {partner}", unit="post") as bar:
                while (posts := int(urllib.request.urlopen(count_url).read()) - before) < queued:
                    if time.monotonic() > deadline:
                        break
                    bar.update(posts - bar.n)
                    time.sleep(0.2)
                bar.update(posts - bar.n)
        cpu = {"reading + rendering": source.cpu_s or 0.0, "replay": cpu_s(), "sending": cpu_s(sender.pid),
               "partner endpoint": cpu_s(partner_pid)}
    finally:
        sender.stop()
        source.close()
        target.close()
    return Replayed(summary.seconds, total.seconds, posts,
                    {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu.items()}, source.rendered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--body-bytes", type=int, default=2000)
    parser.add_argument("--profile", type=Path, metavar="PREFIX",
                        help="write the cProfile statistics of each step to PREFIX-<step>.prof (decode-only, "
                             "archive-write, and each replay loop: kafka, archive, archive-kept)")
    parser.add_argument("--serve-partner", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_partner:
        serve_partner(args.serve_partner)
        return
    logs.configure("WARNING")
    os.environ["NEWSWIRE_WEBHOOK_ALLOW_CIDRS"] = "127.0.0.0/8"
    n = args.events
    rows: list[tuple[str, str, str]] = []
    port = free_port()
    partner_proc = subprocess.Popen([sys.executable, "-m", "bench.replay", "--serve-partner", str(port)],
                                    stdout=subprocess.PIPE, text=True)
    try:
        assert partner_proc.stdout.readline().strip() == "ready"
        count_url = f"http://127.0.0.1:{port}/count"
        with temporary_broker() as broker, tempfile.TemporaryDirectory(prefix="newswire-bench-replay-") as tmp:
            settings = bench_settings(broker, Path(tmp) / "home", sealed=True)
            # in a child process: the generator keeps every article's latest version in memory,
            # which must not count in the peak memory of the archive and the replays
            child = multiprocessing.get_context("fork").Process(target=publish, args=(settings, n, args.body_bytes))
            child.start()
            child.join()
            assert child.exitcode == 0, f"publishing failed ({child.exitcode})"

            def profile(step: str) -> Path | None:
                return args.profile.with_name(f"{args.profile.name}-{step}.prof") if args.profile else None

            plain = consume(settings, "bench-decode-only", lambda d: None, lambda: n, "decode only",
                            overrides=CONSUMER_OPTIONS, profile=profile("decode-only"))
            archiver = Archiver(default_root(settings))
            archive = consume(settings, GROUP, archiver.handle, lambda: n, "archive", write_behind=archiver.take,
                              overrides=CONSUMER_OPTIONS, profile=profile("archive-write"))
            archived = archiver.archived
            archiver.close()
            size = sum(p.stat().st_size for p in default_root(settings).rglob("*") if p.is_file())
            rows += [
                ("archive write", f"{archived / archive.seconds:,.0f} events/s",
                 f"decode-only consume: {n / plain.seconds:,.0f} events/s"),
                ("  after the first batch", f"{archive.steady[0] / archive.steady[1]:,.0f} events/s",
                 f"decode-only: {plain.steady[0] / plain.steady[1]:,.0f} events/s"),
                ("  CPU per event", f"{archive.cpu_ms:.2f} ms", f"decode-only: {plain.cpu_ms:.2f} ms"),
                ("archive size", f"{size / archived:,.0f} B/event on disk",
                 f"{args.body_bytes:,} B bodies, deflate + index"),
                ("peak RSS after archive", f"{peak_rss_mib():,.0f} MiB", f"{n:,} events"),
            ]

            db = store.connect(settings)
            for partner in ("from-kafka", "from-archive", "from-archive-kept"):
                registry.add(db, registry.Partner(id=partner, name=partner, url=f"http://127.0.0.1:{port}/hook",
                                                  secrets=(new_secret(),), concurrency=16),
                             allow=parse_cidrs("127.0.0.0/8"))
            db.close()
            from_kafka = partial(KafkaSource, settings, Window())
            from_archive = partial(ArchiveSource, settings, Window(), default_root(settings))
            # each replay renders every event (the kept renders of the one before deleted), but the
            # last: another partner's backfill in the same format, from the renders kept before it
            for name, make, partner, cold in (("kafka", from_kafka, "from-kafka", True),
                                              ("archive", from_archive, "from-archive", True),
                                              ("archive (kept renders)", from_archive, "from-archive-kept", False)):
                if cold:
                    kept = kept_renders(settings)
                    for suffix in ("", "-wal", "-shm"):
                        kept.with_name(kept.name + suffix).unlink(missing_ok=True)
                done = replay_to(settings, partner, make, count_url, partner_proc.pid,
                                 profile=profile(partner.removeprefix("from-")))
                rows += [
                    (f"replay {name} → partner", f"{done.posts / done.total_s:,.0f} events/s",
                     f"{done.posts:,} signed posts acknowledged in {done.total_s:.0f} s;"
                     f" {done.rendered[0]:,} renders made, {done.rendered[1]:,} kept ones used"),
                    (f"  {name} → outbox only", f"{done.posts / done.queue_s:,.0f} events/s",
                     "reading + filtering + rendering + queueing, before HTTP"),
                    (f"  CPU per event, {name} replay", f"{sum(done.cpu.values()) / done.posts * 1e3:.2f} ms",
                     ", ".join(f"{k} {v / done.posts * 1e3:.2f}" for k, v in done.cpu.items())),
                    (f"peak RSS after {name} replay", f"{peak_rss_mib():,.0f} MiB", ""),
                ]
    finally:
        partner_proc.send_signal(signal.SIGTERM)
        partner_proc.wait(30)
    print_table(f"archive and replay, {n:,} events of {args.body_bytes:,} B bodies", rows)


if __name__ == "__main__":
    main()
