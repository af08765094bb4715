"""Retention of the webhook state: how fast ``outbox.prune`` forgets old deliveries, and what it
costs the pusher's own writes meanwhile.

A SQLite state with ``--partners`` partners, each delivered ``--articles`` articles in two
versions (version 1 four to six months ago, version 2 within the window), one receipt per
delivery. The prune forgets every version 1 (version 2 is newer) and their receipts. Beside it a
writer thread records a receipt-sized transaction every 10 ms, as the pusher does; its commit
latency is measured with the prune running, with nothing running (the floor), and with the
same rows deleted by one bare ``DELETE`` statement (the ceiling on speed, and what a writer
would wait behind without batches).

    .venv/bin/python -m bench.prune --partners 1000 --articles 500     # 1,000,000 deliveries
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from newswire.config import Settings
from newswire.consumers.webhooks import outbox, store
from bench.harness import machine, peak_rss_mib, percentile, print_table

DAY = 86400.0


def build(settings: Settings, partners: int, articles: int, now: float) -> int:
    """The state described above; returns the number of deliveries."""
    db = store.connect(settings, synchronous="OFF")
    with db.transaction():
        db.executemany("INSERT INTO partners (id, name, url, format, filters, concurrency, rate_limit, enabled,"
                       " next_seq, secrets, allow_cidrs, created_at, updated_at) VALUES (?, ?, 'https://example.org/h',"
                       " 'ninjs', '{}', 4, 0, 1, ?, '[]', '[]', ?, ?)",
                       [(f"p{p}", f"p{p}", 2 * articles + 1, now, now) for p in range(partners)])
        db.executemany("INSERT INTO bodies (id, event_id, head, tail) VALUES (?, ?, ?, NULL)",
                       [(a * 2 + v, f"e{a}-{v}", b"x" * 2000) for a in range(articles) for v in (1, 2)])
        db.executemany("INSERT INTO events (event_id, article_id, version, event_type, avro) VALUES (?, ?, ?, ?, ?)",
                       [(f"e{a}-{v}", f"a{a}", v, "published" if v == 1 else "updated", b"x" * 1500)
                        for a in range(articles) for v in (1, 2)])
    delivery_id = 0
    for p in range(partners):
        rows, receipts = [], []
        for a in range(articles):
            for v in (1, 2):
                delivery_id += 1
                at = now - (120 + 60 * a / articles) * DAY if v == 1 else now - (60 * a / articles) * DAY
                seq = 2 * a + v
                rows.append((delivery_id, f"p{p}", f"e{a}-{v}", f"a{a}", v, "published" if v == 1 else "updated",
                             seq, "application/json", a * 2 + v, "delivered", 1, 1, at, 200, at, at))
                receipts.append((delivery_id, f"p{p}", f"e{a}-{v}", f"a{a}", v, seq, 1, at, 200, 80.0, "delivered"))
        with db.transaction():
            db.executemany("INSERT INTO deliveries (id, partner_id, event_id, article_id, version, event_type, seq,"
                           " content_type, body_id, status, attempts, tries, next_attempt_at, last_status,"
                           " created_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO attempts (delivery_id, partner_id, event_id, article_id, version, seq,"
                           " attempt, at, status_code, duration_ms, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           receipts)
    db.close()
    return delivery_id


class Writer:
    """A receipt-sized write transaction every 10 ms on its own connection; commit latencies (ms)."""

    def __init__(self, settings: Settings):
        self.db = store.connect(settings, synchronous="NORMAL")
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.01):
            n += 1
            started = time.perf_counter()
            with self.db.transaction():
                self.db.execute("UPDATE partners SET updated_at = ? WHERE id = 'p0'", (time.time(),))
            self.latencies.append((time.perf_counter() - started) * 1000)

    def __enter__(self) -> "Writer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.db.close()


def _latency(latencies: list[float]) -> str:
    return (f"p50 {percentile(latencies, 50):.1f} / p99 {percentile(latencies, 99):.1f} / max {max(latencies):.0f} ms"
            if latencies else "–")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=200)
    parser.add_argument("--articles", type=int, default=500)
    args = parser.parse_args()
    now = time.time()
    cutoff = now - 90 * DAY
    rows = []
    with tempfile.TemporaryDirectory(prefix="newswire-bench-prune-") as home:
        settings = replace(Settings.from_env(), home=Path(home), state_url=None)
        with tempfile.TemporaryDirectory(prefix="newswire-bench-prune-peer-") as peer_home:
            peer = replace(settings, home=Path(peer_home))
            started = time.perf_counter()
            total = build(settings, args.partners, args.articles, now)
            build(peer, args.partners, args.articles, now)
            built_s = time.perf_counter() - started
            size_mib = store.path_of(settings).stat().st_size / 2**20

            with Writer(settings) as idle:
                time.sleep(2)
            db = store.connect(settings, synchronous="NORMAL")
            with Writer(settings) as beside:
                started = time.perf_counter()
                pruned = outbox.prune(db, cutoff)
                prune_s = time.perf_counter() - started
            db.close()

            db = store.connect(peer, synchronous="NORMAL")
            with Writer(peer) as behind:
                started = time.perf_counter()
                with db.transaction():
                    (bare,) = db.execute("SELECT count(*) FROM deliveries WHERE status = 'delivered'"
                                         " AND delivered_at < ? AND version = 1", (cutoff,)).fetchone()
                    db.execute("DELETE FROM deliveries WHERE status = 'delivered' AND delivered_at < ? AND version = 1",
                               (cutoff,))
                    db.execute("DELETE FROM attempts WHERE at < ?", (cutoff,))
                bare_s = time.perf_counter() - started
            db.close()

    rows += [
        ("state", f"{total:,} deliveries and receipts, {size_mib:,.0f} MiB (built in {built_s:.0f} s)", ""),
        ("prune (batches of 500, resting as long)", f"{pruned.deliveries:,} deliveries + {pruned.attempts:,} receipts in {prune_s:.1f} s",
         f"{(pruned.deliveries + pruned.attempts) / prune_s:,.0f} rows/s"),
        ("bare DELETE, one transaction (peer)", f"{bare:,} deliveries + receipts in {bare_s:.1f} s",
         f"{2 * bare / bare_s:,.0f} rows/s; prune = {(pruned.deliveries + pruned.attempts) / prune_s / (2 * bare / bare_s):.2f}x"),
        ("a writer's commit, idle (floor)", _latency(idle.latencies), ""),
        ("a writer's commit, beside the prune", _latency(beside.latencies), ""),
        ("a writer's commit, behind the bare DELETE", _latency(behind.latencies), ""),
        ("peak RSS", f"{peak_rss_mib():.0f} MiB", machine()),
    ]
    print_table("webhook state retention (SQLite)", rows)


if __name__ == "__main__":
    main()
