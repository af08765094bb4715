"""Real-time pull figures: many long-poll and SSE clients on one feed server, on a real broker.

Starts ``newswire feeds serve`` in its own process, opens ``--long-polls`` clients that long-poll
``/changes.json?since=…&wait=30&fields=id,version`` (each polling again from ``next`` as soon as it
is answered) and ``--streams`` clients reading ``/changes.sse``, all from this process with
aiohttp. Then ``--rounds`` times: publishes one story to Kafka and measures, for every client,
the time from the publish call to that client having the story; the round's figure is the time
until the *last* client has it. Also the feed server's resident memory with every client on.

Figures are printed, never asserted. The machine is shared (2 cores, 7 sessions at once, the
clients in the same machine as the server): these are figures of that machine at that time.

Run: ``.venv/bin/python -m bench.realtime`` (1,000 of each by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp

from bench.feeds import spawn, wait_until_serving
from bench.harness import bench_settings, peak_rss_mib, percentile, print_table, temporary_broker
from newswire import bus, corpus, logs
from newswire.broker import free_port
from newswire.config import Settings


class Clients:
    """When each client got each article (perf_counter seconds)."""

    def __init__(self) -> None:
        self.got: dict[str, dict[int, float]] = {}
        self.connected = 0

    def record(self, article_id: str, client: int) -> None:
        self.got.setdefault(article_id, {}).setdefault(client, time.perf_counter())


async def long_poller(session: aiohttp.ClientSession, base: str, since: int, client: int, seen: Clients) -> None:
    connected = False
    while True:
        async with session.get(f"{base}/changes.json", params={"since": since, "wait": 30, "fields": "id"}) as reply:
            if not connected:
                seen.connected, connected = seen.connected + 1, True
            page = json.loads(await reply.read())
        for item in page["items"]:
            seen.record(item["id"], client)
        since = page["next"]


async def streamer(session: aiohttp.ClientSession, base: str, since: int, client: int, seen: Clients) -> None:
    async with session.get(f"{base}/changes.sse", params={"since": since, "fields": "id"}) as stream:
        seen.connected += 1
        async for line in stream.content:
            if line.startswith(b"data: "):
                seen.record(json.loads(line[6:])["id"], client)


def _p50_p99(seconds: list[float]) -> str:
    return f"p50 {percentile(seconds, 50) * 1000:,.0f} ms p99 {percentile(seconds, 99) * 1000:,.0f} ms"


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process (from /proc), in MiB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


async def run_clients(settings: Settings, base: str, pid: int,
                      options: argparse.Namespace) -> list[tuple[str, str, str]]:
    async with aiohttp.ClientSession(base) as probe, probe.get("/health") as reply:
        since = (await reply.json())["cursor"]
    polls, streams = Clients(), Clients()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    kafka = bus.producer(settings)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        tasks = [asyncio.create_task(long_poller(session, base, since, i, polls)) for i in range(options.long_polls)]
        tasks += [asyncio.create_task(streamer(session, base, since, i, streams)) for i in range(options.streams)]
        start = time.perf_counter()
        while polls.connected < options.long_polls or streams.connected < options.streams:
            if time.perf_counter() - start > 300:
                raise TimeoutError(f"only {polls.connected} long polls and {streams.connected} streams connected")
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # let every long poll be held again
        rss_connected = rss_mib(pid)
        lasts: dict[str, list[float]] = {"long poll": [], "SSE": []}
        each: dict[str, list[float]] = {"long poll": [], "SSE": []}
        for number in range(options.rounds):
            article_id = f"rt-{number}"
            event = corpus.story(random.Random(number), article_id, body_bytes=1500)
            published = time.perf_counter()
            await asyncio.to_thread(bus.publish_events, settings, kafka, [event])
            deadline = published + 120
            for name, seen, count in (("long poll", polls, options.long_polls), ("SSE", streams, options.streams)):
                while len(seen.got.get(article_id, {})) < count and time.perf_counter() < deadline:
                    await asyncio.sleep(0.01)
                times = [t - published for t in seen.got.get(article_id, {}).values()]
                each[name] += times
                if len(times) == count:
                    lasts[name].append(max(times))
            await asyncio.sleep(1)  # the long polls are held again
        rss_now, rss_peak = rss_mib(pid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    kafka.close()
    rows = []
    for name, count in (("long poll", options.long_polls), ("SSE", options.streams)):
        if lasts[name]:
            rows.append((f"{count:,} {name} clients: publish -> last client has it", _p50_p99(lasts[name]),
                         f"{len(lasts[name])}/{options.rounds} rounds complete"))
        if each[name]:
            rows.append((f"{count:,} {name} clients: publish -> each client has it", _p50_p99(each[name]),
                         f"{len(each[name]):,} deliveries"))
    rows.append(("feed server RSS, all clients connected", f"{rss_connected[0]:,.0f} MiB",
                 f"after the rounds {rss_now:,.0f} MiB, peak {rss_peak:,.0f} MiB"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-polls", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    logs.configure("WARNING")
    with temporary_broker() as broker, TemporaryDirectory(prefix="newswire-bench-realtime-") as home:
        settings = bench_settings(broker, Path(home), partitions=3)
        kafka = bus.producer(settings)
        bus.publish_events(settings, kafka, [corpus.story(random.Random(0), "rt-seed", body_bytes=1500)])
        kafka.close()
        port = free_port()
        env = {**os.environ, **settings.to_env(), "NEWSWIRE_LOG_LEVEL": "WARNING"}
        server = spawn([sys.executable, "-m", "newswire.cli", "feeds", "serve", "--port", str(port)], env)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_serving(base, 1, server)
            rows = asyncio.run(run_clients(settings, base, server.pid, options))
        finally:
            server.terminate()
            server.wait(60)
        rows.append(("peak RSS of the bench process (the clients)", f"{peak_rss_mib():,.0f} MiB",
                     "clients and server share 2 cores with 6 other sessions"))
        print_table("newswire feeds: real-time pull (long poll, SSE)", rows)


if __name__ == "__main__":
    main()
