"""What one scrape of the status page's ``/metrics`` (and its overview) costs at agency size, and
one partner's page.

The state of :func:`bench.prune.build` (``--partners`` partners, each delivered ``--articles``
articles in two versions, a receipt per delivery), plus, for one partner in ten, a few pending
deliveries, a dead one and a run of failed attempts. Timed: the partners' states (what the
gauges read), their health (the overview's table) and one partner's page, each beside reading
the partners table alone (the floor: any per-partner report reads it).

    .venv/bin/python -m bench.status --partners 10000 --articles 50     # 1,000,000 deliveries
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from newswire.config import Settings
from newswire.consumers.webhooks import partner_state, partners, receipts, store
from newswire.consumers.webhooks.config import WebhookConfig
from bench.harness import machine, peak_rss_mib, percentile, print_table
from bench.prune import build


def troubles(settings: Settings, partners_n: int, now: float) -> None:
    """One partner in ten: three pending (one retried), one dead, and three failed attempts in a row."""
    db = store.connect(settings, synchronous="OFF")
    with db.transaction():
        for p in range(0, partners_n, 10):
            db.executemany("UPDATE deliveries SET status = ?, attempts = ? WHERE partner_id = ? AND seq = ?",
                           [("pending", 0, f"p{p}", 1), ("pending", 1, f"p{p}", 2), ("pending", 0, f"p{p}", 3),
                            ("dead", 8, f"p{p}", 4)])
            db.executemany("INSERT INTO attempts (delivery_id, partner_id, event_id, article_id, version, seq,"
                           " attempt, at, status_code, duration_ms, outcome) VALUES (0, ?, 'e0-1', 'a0', 1, 1, ?, ?,"
                           " 500, 80.0, 'retry')", [(f"p{p}", n, now + 1 + n) for n in range(3)])
            partners.note_attempts(db, [(f"p{p}", "retry", now + 1 + n, None) for n in range(3)])
    db.close()


def timed(read: Callable[[], object], rounds: int) -> list[float]:
    """Milliseconds per call of ``read``."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        read()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partners", type=int, default=2000)
    parser.add_argument("--articles", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config = WebhookConfig()
    with tempfile.TemporaryDirectory(prefix="newswire-bench-status-") as home:
        settings = replace(Settings.from_env(), home=Path(home), state_url=None)
        now = time.time()
        deliveries = build(settings, args.partners, args.articles, now)
        troubles(settings, args.partners, now)
        db = store.connect(settings)
        db.execute("ANALYZE")
        one = f"p{args.partners // 2 // 10 * 10}"  # a partner with troubles
        floor = timed(lambda: db.execute("SELECT * FROM partners ORDER BY id").fetchall(), args.rounds)
        states = timed(lambda: partner_state.partner_states(db, config), args.rounds)
        health = timed(lambda: receipts.health(db), args.rounds)
        page = timed(lambda: (partner_state.partner_states(db, config, only=one), receipts.health(db, only=one)),
                     args.rounds)
        failing = sum(s.failing > 0 for s in partner_state.partner_states(db, config))
        db.close()
        size = store.path_of(settings).stat().st_size / 2**20

    def p50(times: list[float]) -> str:
        return f"{percentile(times, 50):,.1f} ms"

    print_table(f"status reads, {args.partners:,} partners, {deliveries:,} deliveries and receipts each "
                f"({size:,.0f} MiB, SQLite)", [
                    ("partners' states (the /metrics gauges), p50", p50(states), f"floor {p50(floor)}"),
                    ("partners' health (the overview), p50", p50(health), f"floor {p50(floor)}"),
                    ("one partner's page, p50", p50(page), f"{failing:,} partners failing"),
                    ("peak RSS", f"{peak_rss_mib():.0f} MiB", machine()),
                ])


if __name__ == "__main__":
    main()
