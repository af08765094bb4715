"""The pull transport's long polls at scale: many pull partners waiting on one server.

Registers ``--partners`` partners in mode pull, each with a partner API token, starts ``newswire
webhooks run`` (which queues their deliveries) and ``newswire partner-api serve`` (its token
check, audit and rate limit, set high here, on every request), and has every partner
long-poll ``GET /v1/changes?after=<its last>&wait=30`` from this process with aiohttp, polling
again as soon as it is answered. Then ``--rounds`` times: publishes one story and measures, per
partner, the time from the publish call to its answer carrying the story; the round's figures
are the p50, p99 and the last partner. Also the server's CPU seconds and peak RSS.

Figures are printed, never asserted. The machine is shared (2 cores, other sessions' suites and
brokers at once, the clients on the same machine as the server).

Run: ``.venv/bin/python -m bench.pull`` (1,000 partners by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp

from bench.harness import bench_settings, machine, percentile, print_table, temporary_broker
from bench.push import process_figures, pusher_process
from newswire import bus, corpus
from newswire.broker import free_port
from newswire.config import Settings
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.partner_api import tokens
from newswire.consumers.webhooks import signing, store


async def partner_polls(session: aiohttp.ClientSession, base: str, partner: str, token: str, got: dict,
                        stop: asyncio.Event):
    """One partner: long-poll from its last number, note when each number arrived."""
    after = 0
    while not stop.is_set():
        async with session.get(f"{base}/v1/changes", params={"after": after, "wait": 30},
                               headers={"Authorization": f"Bearer {token}"}) as answer:
            page = await answer.json()
        for change in page["changes"]:
            got.setdefault(change["seq"], {})[partner] = time.perf_counter()
        after = page["last_seq"] or after


async def rounds(base: str, settings: Settings, partners: dict[str, str], count: int) -> list[list[float]]:
    got: dict[int, dict[str, float]] = {}
    stop = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        polls = [asyncio.create_task(partner_polls(session, base, p, token, got, stop))
                 for p, token in partners.items()]
        kafka = bus.producer(settings)
        results = []
        try:
            for n in range(count + 1):  # the first round warms up (the pusher's group join)
                await asyncio.sleep(2)  # every poll waiting again
                published = time.perf_counter()
                await asyncio.to_thread(bus.publish_events, settings, kafka,
                                        [corpus.story(random.Random(n), f"pull-{n}", body_bytes=2000)])
                deadline = time.monotonic() + 120
                while len(got.get(n + 1, {})) < len(partners) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                if n:
                    results.append(sorted(at - published for at in got.get(n + 1, {}).values()))
        finally:
            kafka.close()
            stop.set()
            for poll in polls:
                poll.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
    return results


def listening(port: int, deadline_s: float) -> None:
    """Wait until the server process accepts connections."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the pull server did not listen on {port} within {deadline_s:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partners", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with temporary_broker() as broker, TemporaryDirectory(prefix="newswire-bench-pull-") as home:
        settings = bench_settings(broker, Path(home) / "home")
        db = store.connect(settings)
        secret = signing.new_secret()
        partners = {}
        for n in range(args.partners):
            partner = registry.add(db, registry.Partner(id=f"p{n:04d}", name=f"P{n}", url="", mode="pull",
                                                        secrets=(secret,)))
            partners[partner.id] = tokens.issue(db, partner.id).secret
        db.close()
        port = free_port()
        env = {**os.environ, **settings.to_env()}
        server = subprocess.Popen([sys.executable, "-m", "newswire.cli", "--log-level", "WARNING", "partner-api",
                                   "serve", "--port", str(port), "--rate-limit", "1000000/minute"], env=env,
                                  stdout=(Path(home) / "server.log").open("w"), stderr=subprocess.STDOUT)
        pusher = pusher_process(settings, Path(home) / "pusher.log")
        try:
            listening(port, deadline_s=60)
            results = asyncio.run(rounds(f"http://127.0.0.1:{port}", settings, partners, args.rounds))
            cpu, rss = process_figures(server.pid)
        finally:
            for process in (server, pusher):
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
    rows = []
    for n, times in enumerate(results, 1):
        if len(times) < args.partners:
            rows.append((f"round {n}", f"only {len(times)} of {args.partners} partners had it in 120 s", ""))
            continue
        rows.append((f"round {n}: publish → answered", f"p50 {percentile(times, 50) * 1000:.0f} ms, p99 "
                     f"{percentile(times, 99) * 1000:.0f} ms, last {times[-1] * 1000:.0f} ms", f"{args.partners} partners"))
    rows.append(("server CPU, peak RSS", f"{cpu:.1f} CPU s, {rss:.0f} MiB", f"{args.partners} long polls held"))
    print_table(f"pull long polls ({machine()}, load {os.getloadavg()[0]:.1f})", rows)


if __name__ == "__main__":
    main()
