"""Charts over the last hours, from newswire's own records: the receipts (attempts delivered
and failed, their answer times) and the archive index (events published). Rendered on the
server as inline SVG, so the first paint shows them without any script.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

from markupsafe import Markup, escape

from newswire.consumers.archive.index import Index
from newswire.consumers.webhooks.receipts import FAILED

HOURS = 6
BUCKET_S = 600


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: list[float]


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    starts: list[float]  #: epoch seconds of each bucket's start
    series: list[Series]


def _starts(now: float, hours: int, bucket_s: int) -> list[float]:
    first = (now // bucket_s) * bucket_s - (hours * 3600 // bucket_s - 1) * bucket_s
    return [first + i * bucket_s for i in range(hours * 3600 // bucket_s)]


def _bucket(at: float, starts: list[float], bucket_s: int) -> int | None:
    i = int((at - starts[0]) // bucket_s)
    return i if 0 <= i < len(starts) else None


def delivery_charts(db: sqlite3.Connection, *, now: float, hours: int = HOURS, bucket_s: int = BUCKET_S
                    ) -> list[Chart]:
    """Attempts per bucket (delivered, failed) and the slowest and median answer time."""
    starts = _starts(now, hours, bucket_s)
    delivered, failed = [0.0] * len(starts), [0.0] * len(starts)
    times: list[list[float]] = [[] for _ in starts]
    for at, outcome, ms in db.execute("SELECT at, outcome, duration_ms FROM attempts WHERE at >= ?", (starts[0],)):
        i = _bucket(at, starts, bucket_s)
        if i is None:
            continue
        if outcome == "delivered":
            delivered[i] += 1
        elif outcome in FAILED:
            failed[i] += 1
        times[i].append(ms)
    median = [sorted(t)[len(t) // 2] if t else 0.0 for t in times]
    slowest = [max(t) if t else 0.0 for t in times]
    per = f"per {bucket_s // 60} min"
    return [Chart(f"Deliveries {per}", "attempts", starts,
                  [Series("delivered", "#067647", delivered), Series("failed", "#b42318", failed)]),
            Chart("Partner answer time", "ms", starts,
                  [Series("median", "#175cd3", median), Series("slowest", "#b54708", slowest)])]


def published_chart(index: Index, *, now: float, hours: int = HOURS, bucket_s: int = BUCKET_S) -> Chart:
    """Events published per bucket, as the archive recorded them."""
    starts = _starts(now, hours, bucket_s)
    counts = [0.0] * len(starts)
    for entry in index.entries(since_ms=int(starts[0] * 1000)):
        i = _bucket(entry.published_at / 1000, starts, bucket_s)
        if i is not None:
            counts[i] += 1
    return Chart(f"Events published per {bucket_s // 60} min (archive)", "events", starts,
                 [Series("published", "#175cd3", counts)])


def svg(chart: Chart, *, width: int = 440, height: int = 120) -> Markup:
    """The chart as inline SVG: a bar per bucket and series, the peak and the hours marked."""
    top = max((v for s in chart.series for v in s.values), default=0.0) or 1.0
    n, k = len(chart.starts), len(chart.series)
    slot = width / max(n, 1)
    bar = max(slot / k - 0.5, 0.5)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height + 16}" width="{width}" '
             f'height="{height + 16}" aria-label="{escape(chart.title)}">']
    for j, series in enumerate(chart.series):
        for i, value in enumerate(series.values):
            if value:
                h = value / top * height
                parts.append(f'<rect x="{i * slot + j * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" '
                             f'height="{h:.1f}" fill="{series.color}"><title>{escape(series.name)} '
                             f'{value:g} {escape(chart.unit)} at {_hhmm(chart.starts[i])}</title></rect>')
    for i, start in enumerate(chart.starts):
        if start % 3600 == 0:
            parts.append(f'<text x="{i * slot:.1f}" y="{height + 12}" font-size="10" fill="#6b7280">'
                         f'{_hhmm(start)}</text>')
    parts.append(f'<text x="{width}" y="10" font-size="10" text-anchor="end" fill="#6b7280">'
                 f'peak {top:g} {escape(chart.unit)}</text></svg>')
    return Markup("".join(parts))


def _hhmm(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M")
