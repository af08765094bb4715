"""Scale-out of the partner push: one ``newswire webhooks run`` process against two, sharing a
PostgreSQL state (issue 11, item 5(c)). Figures are printed, never asserted.

1. A real broker and a real PostgreSQL server (Debian's, as the tests start it), each run in
   a temporary directory; ``--partners`` endpoints (aiohttp, one process, bench.push's) that
   verify every signature and answer 204 at once.
2. For 1 pusher on the SQLite file (the baseline), then 1 and 2 pushers on PostgreSQL: a new
   state (file or database) and a new topic, ``--backlog`` articles published
   before the pushers start, every partner subscribed to everything; the pushers are started
   together and share the partners through their leases.
3. Reported: deliveries/s from the first delivery to the last (the attempts' own times), the
   delivered attempts beside the deliveries queued (more attempts than deliveries would be
   something sent twice), the partners each pusher held at the end, and the ratio two/one.

On a machine with 2 shared cores, two pushers compete with the broker, PostgreSQL and the
partners' process for the same cores, so the ratio says more about the coordination's cost
than about the capacity of a second machine.

Run: ``.venv/bin/python -m bench.push_scale``. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.harness import bench_settings, machine, print_table, temporary_broker
from bench.push import delivered, pusher_process
from newswire import bus, corpus
from newswire.broker import free_port
from newswire.config import Settings
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import signing, store
from newswire.consumers.webhooks.config import parse_cidrs
from tests.postgres_server import LocalPostgres


def run(settings: Settings, pushers: int, ports: list[int], secret: str, backlog: int, home: Path) -> dict:
    """Publish the backlog, start ``pushers`` processes, wait until every partner has it."""
    db = store.connect(settings)
    for n, port in enumerate(ports):
        registry.add(db, registry.Partner(id=f"p{n:03d}", name=f"Partner {n}", url=f"http://127.0.0.1:{port}/hook",
                                          secrets=(secret,), concurrency=8), allow=parse_cidrs("127.0.0.0/8"))
    db.close()
    kafka = bus.producer(settings)
    bus.publish_events(settings, kafka, list(corpus.stream(backlog, seed=31, versions=False, body_bytes=3000)))
    kafka.close()
    processes = [pusher_process(settings, home.parent / f"{home.name}-pusher-{n}.log",
                                NEWSWIRE_WEBHOOK_LEASE="3", NEWSWIRE_WEBHOOK_POLL="0.2") for n in range(pushers)]
    expected = backlog * len(ports)
    deadline = time.monotonic() + 600
    try:
        while delivered(settings) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        db = store.connect(settings)
        try:
            first, last, count = db.execute("SELECT min(at), max(at), count(*) FROM attempts"
                                            " WHERE outcome = 'delivered'").fetchone()
            queued = db.execute("SELECT count(*) FROM deliveries").fetchone()[0]
            held = [r[0] for r in db.execute("SELECT count(*) FROM partner_leases l JOIN pushers p ON p.id = l.owner"
                                             " GROUP BY l.owner ORDER BY 1 DESC")]
        finally:
            db.close()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    return {"rate": count / max(1e-6, last - first), "count": count, "expected": expected, "queued": queued,
            "seconds": last - first, "held": held}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=40, help="partner endpoints")
    parser.add_argument("--backlog", type=int, default=200, help="articles each run delivers to every partner")
    args = parser.parse_args()
    secret = signing.new_secret()
    ports = [free_port() for _ in range(args.partners)]
    postgres = LocalPostgres().start()
    try:
        with temporary_broker() as broker, tempfile.TemporaryDirectory(prefix="newswire-bench-scale-") as tmp:
            home = Path(tmp)
            partners_proc = subprocess.Popen([sys.executable, "-m", "bench.push", "--serve-partners",
                                              ",".join(map(str, ports)), secret, str(home / "received.txt")],
                                             stdout=subprocess.PIPE, text=True)
            assert partners_proc.stdout.readline().strip() == "ready"
            try:
                results = {}
                for store_name, pushers in (("SQLite", 1), ("PostgreSQL", 1), ("PostgreSQL", 2)):
                    settings = bench_settings(broker, home / f"home-{store_name}-{pushers}")
                    if store_name == "PostgreSQL":
                        settings = replace(settings, state_url=postgres.new_database())
                    results[store_name, pushers] = run(settings, pushers, ports, secret, args.backlog,
                                                       home / settings.home.name)
            finally:
                partners_proc.send_signal(signal.SIGTERM)
                partners_proc.wait(60)
    finally:
        postgres.stop()
    rows = []
    for (store_name, pushers), r in results.items():
        rows.append((f"{pushers} pusher{'s' if pushers > 1 else ''} on {store_name}: deliveries/s",
                     f"{r['rate']:,.0f}", f"{r['count']:,} delivered attempts for {r['queued']:,} deliveries "
                                          f"({r['expected']:,} expected) in {r['seconds']:.1f} s; "
                                          f"partners held {'/'.join(map(str, r['held'])) or '-'}"))
    two, one = results["PostgreSQL", 2]["rate"], results["PostgreSQL", 1]["rate"]
    rows.append(("two pushers / one (PostgreSQL)", f"{two / one:.2f}x",
                 f"target 1.6x where the cores are there; this machine: {machine()}, shared"))
    print_table(f"partner push scale-out ({args.partners} local partners, backlog {args.backlog} articles)", rows)


if __name__ == "__main__":
    main()
