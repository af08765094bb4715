"""Feed server and feed view figures: memory, restart and requests at a history's size.

1. The view of ``--articles`` generated articles (new stories, updates, corrections, kills,
   withdrawals: ``corpus.stream``). By default it is written straight into the view's SQLite file
   through the writer the feeds consumer uses (``FeedView.apply`` and ``ViewStore.save``, in
   batches; no broker, no renders), which makes a million articles a matter of minutes. With
   ``--from-topic`` the corpus is published to a fresh topic instead, and the view is measured
   three ways: rebuilt from the topic into memory (decode + apply), the feeds consumer's first
   start (topic -> view -> SQLite, with the renderers' checks), and a restart from SQLite.
   ``--home DIR`` keeps the view there (built when it is not there yet), so the same history
   can be measured by two versions of the code.
2. A restart in this process: ``open_view`` on the file, timed (twice: the first one upgrades a
   file written by an older version of the store, once).
3. Starts ``newswire feeds serve`` in its own process on 127.0.0.1 over that view (with a real,
   empty topic), takes its start time and resident memory, and drives it with an aiohttp client
   (``--concurrency`` connections, bounded by ``--requests`` and ``--seconds`` per measure):
   feed pages, items, the change cursor from the oldest point of the history and from half-way
   back, 304 answers, and a trivial aiohttp handler with a body of the same size as the ceiling.

Run: ``.venv/bin/python -m bench.feeds`` (``--articles 100000`` by default). Progress bars go to
a terminal only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Iterator

import aiohttp
from aiohttp import web

from bench.harness import Stopwatch, bench_settings, peak_rss_mib, percentile, print_table, progress, temporary_broker
from newswire import bus, codec, corpus, logs
from newswire.broker import free_port
from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.consumers.feeds.consumer import FeedsConsumer, open_view, utc_now
from newswire.consumers.feeds.view import FeedView

#: changes written to the store in one transaction while building the view
BUILD_BATCH = 5000


def corpus_events(articles: int, body_bytes: int, what: str) -> Iterator[ArticleEvent]:
    """The generated corpus's events until ``articles`` distinct articles exist (with a progress bar)."""
    seen: set[str] = set()
    with progress(total=articles, desc=what, unit="article") as bar:
        for event in corpus.stream(articles * 2, seed=3, body_bytes=body_bytes):
            if event["article_id"] not in seen:
                if len(seen) == articles:
                    return
                seen.add(event["article_id"])
                bar.update()
            yield event


def build_store(settings: Settings, articles: int, body_bytes: int) -> int:
    """Write the view of ``articles`` generated articles into ``<home>/feeds/view.sqlite3`` through
    the feeds consumer's own writer (the view's journal saved by ``ViewStore.save``); return the
    number of events."""
    view, store = open_view(settings)
    now, events = utc_now(), 0

    def save() -> None:
        changes = view.take_journal()
        if changes:
            store.save(changes, view, {})
            view.mark_durable(changes[-1].entry.seq)

    for event in corpus_events(articles, body_bytes, "build the view"):
        view.apply(event, now)
        events += 1
        if view.head - view.durable >= BUILD_BATCH:
            save()
    save()
    store.close()
    return events


def publish_corpus(settings: Settings, articles: int, body_bytes: int) -> int:
    """Publish events until ``articles`` distinct articles exist; return the number of events."""
    kafka = bus.producer(settings, linger_ms=50, batch_size=512 * 1024)
    events = 0
    for event in corpus_events(articles, body_bytes, "publish"):
        bus.send_event(kafka, settings.topics.articles, event)
        events += 1
    kafka.flush(timeout=300)
    kafka.close()
    return events


def rebuild_from_topic(settings: Settings) -> tuple[float, int]:
    """Seconds to read the whole topic into a fresh in-memory view, and the articles it holds."""
    reader = bus.consumer(settings, None, max_poll_records=5000, fetch_max_bytes=64 * 1024 * 1024)
    topic = settings.topics.articles
    partitions = bus.partitions(reader, topic)
    reader.assign(partitions)
    ends = reader.end_offsets(partitions)
    view, now = FeedView(), utc_now()
    with Stopwatch() as watch, progress(total=sum(ends.values()), desc="rebuild from topic", unit="event") as bar:
        reader.seek_to_beginning()
        while any(reader.position(tp) < ends[tp] for tp in partitions):
            for records in reader.poll(timeout_ms=500).values():
                for record in records:
                    view.apply(codec.decode(record.value), now, payload=record.value)
                bar.update(len(records))
    reader.close(autocommit=False)
    return watch.seconds, len(view)


def first_start(settings: Settings) -> float:
    """Seconds for the feeds consumer to take in the whole topic into an empty persisted view."""
    view, store = open_view(settings)
    consumer = FeedsConsumer(settings, view, store)
    with Stopwatch() as watch, progress(desc="consumer first start", unit="event") as bar:
        while True:
            bar.update(consumer.poll(500))
            if consumer.caught_up():
                break
    consumer.stop()
    store.close()
    return watch.seconds


def load_persisted(settings: Settings) -> tuple[float, int]:
    with Stopwatch() as watch:
        view, store = open_view(settings)
    store.close()
    return watch.seconds, len(view)


# --- HTTP load ------------------------------------------------------------------------------

async def drive(url: str, headers: dict[str, str], requests: int, seconds: float,
                concurrency: int) -> tuple[float, list[float], dict[int, int]]:
    """Requests/s, latencies (ms) and status counts of GET ``url`` under ``concurrency`` connections."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    remaining = requests

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            start = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append((time.perf_counter() - start) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies, statuses


async def etag_of(url: str) -> tuple[str, int]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.read()
        return response.headers["ETag"], len(body)


def wait_until_serving(url: str, articles: int, process: subprocess.Popen, timeout_s: float = 600) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as reply:
                if json.loads(reply.read())["articles"] == articles:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the feed server did not come up")


def ceiling_server(port: int, size: int) -> None:
    """A trivial aiohttp handler returning ``size`` bytes with an ETag (the ceiling)."""
    body = b"x" * size

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"c"':
            return web.Response(status=304, headers={"ETag": '"c"'})
        return web.Response(body=body, headers={"ETag": '"c"'}, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, headers: dict[str, str], pid: int, load: dict) -> tuple[str, dict[int, int]]:
    """``req/s, latency percentiles, server CPU per request`` of a load on ``url``."""
    before = cpu_seconds(pid)
    rate, latencies, statuses = asyncio.run(drive(url, headers, **load))
    cpu_us = (cpu_seconds(pid) - before) / len(latencies) * 1e6
    return (f"{rate:,.0f} req/s p50 {percentile(latencies, 50):.1f} ms p99 {percentile(latencies, 99):.1f} ms "
            f"server CPU {cpu_us:,.0f} us/req"), statuses


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def rss_mib(pid: int) -> float:
    """The resident memory of a process now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def traced_view_mib(settings: Settings) -> tuple[float, int]:
    """The Python memory a restarted view holds (tracemalloc), and how many articles it keeps in memory."""
    tracemalloc.start()
    view, store = open_view(settings)
    held = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    in_memory = view.in_memory() if hasattr(view, "in_memory") else len(view)
    store.close()
    return held, in_memory


def health(base: str) -> dict:
    with urllib.request.urlopen(base + "/health", timeout=30) as reply:
        return json.loads(reply.read())


def http_figures(settings: Settings, articles: int, options: argparse.Namespace) -> list[tuple[str, str, str]]:
    port, ceiling_port = free_port(), free_port()
    env = {**os.environ, **settings.to_env(), "NEWSWIRE_LOG_LEVEL": "WARNING"}
    server = spawn([sys.executable, "-m", "newswire.cli", "feeds", "serve", "--port", str(port)], env)
    ceiling = None
    try:
        base = f"http://127.0.0.1:{port}"
        started = wait_until_serving(base, articles, server)
        rows = [("feed server start (load view, serve)", f"{started:.1f} s", f"{articles:,} articles"),
                ("feed server RSS after start", f"{rss_mib(server.pid):,.0f} MiB", "")]
        if not options.requests:  # memory and start only
            return rows
        _, size = asyncio.run(etag_of(base + "/feeds/all.rss"))
        ceiling = spawn([sys.executable, "-m", "bench.feeds", "--ceiling-port", str(ceiling_port),
                         "--ceiling-size", str(size)], env)
        while True:
            try:
                asyncio.run(etag_of(f"http://127.0.0.1:{ceiling_port}/"))
                break
            except (aiohttp.ClientError, OSError):
                time.sleep(0.1)
        load = dict(requests=options.requests, seconds=options.seconds, concurrency=options.concurrency)
        ceiling_url = f"http://127.0.0.1:{ceiling_port}/"
        ceiling_full, _ = measure(ceiling_url, {}, ceiling.pid, load)
        ceiling_304, _ = measure(ceiling_url, {"If-None-Match": '"c"'}, ceiling.pid, load)
        half_way = health(base)["cursor"] - articles // 2  # about half-way back through the changes
        for path in ("/feeds/all.rss", "/feeds/all.atom", "/feeds/all.newsml", "/feeds/all.json",
                     "/feeds/lang-ar.rss", "/feeds/all.json?limit=500", "/items/nw-3-0000000.newsml",
                     "/changes.json?since=0", f"/changes.json?since={half_way}", "/changes.json?since=0&fields=id,version"):
            _, size = asyncio.run(etag_of(base + path))
            figure, statuses = measure(base + path, {}, server.pid, load)
            assert set(statuses) == {200}, statuses
            rows.append((f"200 {path} ({size:,} B)", figure, ""))
        rows.append(("ceiling: trivial aiohttp 200, same size as all.rss", ceiling_full, ""))
        etag, _ = asyncio.run(etag_of(base + "/feeds/all.rss"))
        figure, statuses = measure(base + "/feeds/all.rss", {"If-None-Match": etag}, server.pid, load)
        assert set(statuses) == {304}, statuses
        rows.append(("304 /feeds/all.rss (If-None-Match)", figure, ""))
        rows.append(("ceiling: trivial aiohttp 304", ceiling_304, ""))
        figure, statuses = measure(base + "/feeds/all.rss", {"Accept-Encoding": "gzip"}, server.pid, load)
        rows.append(("200 /feeds/all.rss gzip", figure, ""))
        rows.append(("feed server RSS after the requests", f"{rss_mib(server.pid):,.0f} MiB", f"{articles:,} articles"))
        return rows
    finally:
        for process in (server, ceiling):
            if process is not None:
                process.terminate()
                process.wait(60)


def from_topic(settings: Settings, options: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Publish the corpus, rebuild the view from the topic in memory, and the consumer's first start."""
    with Stopwatch() as publishing:
        events = publish_corpus(settings, options.articles, options.body_bytes)
    topic_seconds, articles = rebuild_from_topic(settings)
    gc.collect()
    rss_after_rebuild = peak_rss_mib()
    first_seconds = first_start(settings)
    return [
        ("corpus", f"{articles:,} articles, {events:,} events", f"published in {publishing.seconds:.1f} s"),
        ("view rebuilt from the topic (decode+apply)", f"{topic_seconds:.1f} s "
         f"({events / topic_seconds:,.0f} events/s)", f"peak RSS {rss_after_rebuild:,.0f} MiB (every article in memory)"),
        ("consumer first start (topic -> view -> SQLite)", f"{first_seconds:.1f} s", ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--body-bytes", type=int, default=2000, help="body size of the generated stories")
    parser.add_argument("--home", type=Path, help="keep the view in this NEWSWIRE_HOME (built when it is not there)")
    parser.add_argument("--from-topic", action="store_true",
                        help="publish the corpus to Kafka and build the view from the topic (rebuild and first start)")
    parser.add_argument("--traced", action="store_true", help="also the restarted view's Python memory (tracemalloc)")
    parser.add_argument("--requests", type=int, default=4000,
                        help="at most this many requests per measure (0: only the server's start and memory)")
    parser.add_argument("--seconds", type=float, default=10.0, help="at most this long per measure")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ceiling-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ceiling-size", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.ceiling_port:
        ceiling_server(options.ceiling_port, options.ceiling_size)
        return
    logs.configure("WARNING")  # a line per applied event would measure the log, not the view
    with temporary_broker() as broker, contextlib.ExitStack() as stack:
        home = options.home or Path(stack.enter_context(TemporaryDirectory(prefix="newswire-bench-feeds-")))
        settings = bench_settings(broker, home)
        db = settings.home / "feeds" / "view.sqlite3"
        if options.from_topic:
            rows = from_topic(settings, options)
        elif not db.exists():
            with Stopwatch() as building:
                events = build_store(settings, options.articles, options.body_bytes)
            rows = [("view built into SQLite (apply + save, no broker)", f"{building.seconds:.1f} s",
                     f"{options.articles:,} articles, {events:,} events")]
        else:
            rows = [("view", f"kept in {home}", "")]
        first_seconds, articles = load_persisted(settings)
        load_seconds, loaded = load_persisted(settings)
        assert loaded == articles, (loaded, articles)
        rows += [
            ("view opened the first time (upgrades an older file)", f"{first_seconds:.1f} s", f"{articles:,} articles"),
            ("view loaded from SQLite (restart)", f"{load_seconds:.2f} s", f"SQLite file {db.stat().st_size / 2**20:,.0f} MiB"),
        ]
        if options.traced:
            held, in_memory = traced_view_mib(settings)
            rows.append(("restarted view in memory (tracemalloc)", f"{held:,.1f} MiB", f"{in_memory:,} articles in memory"))
        rows += http_figures(settings, articles, options)
        rows.append(("peak RSS of the bench process", f"{peak_rss_mib():,.0f} MiB", ""))
        print_table("newswire feeds: view and feed server", rows)


if __name__ == "__main__":
    main()
