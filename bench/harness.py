"""What every benchmark shares: a throw-away real broker, timing, percentiles, memory, a table.

Benchmarks print figures; they never assert. Run one with ``.venv/bin/python bench/<name>.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import secrets
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

from newswire import topics
from newswire.broker import LocalBroker, free_port
from newswire.config import Settings, Topics
from tqdm import tqdm


@contextlib.contextmanager
def temporary_broker() -> Iterator[LocalBroker]:
    """A real single-node broker in a temporary directory, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="newswire-bench-") as state:
        broker = LocalBroker(state_dir=Path(state), cache=Settings.from_env().cache,
                             port=free_port(), controller_port=free_port())
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


def bench_settings(broker: LocalBroker, home: Path, partitions: int = 6, *, sealed: bool = False) -> Settings:
    """Settings on ``broker`` with fresh topics (created) and ``home`` as state directory.

    ``sealed``: with a cleaning key (:mod:`newswire.seal`), as an installation whose producers and
    consumers share one: the bench's generated events are clean (``build_event`` leaves them as
    they are), so the bench seals them as newswire's producer would and its consumers skip the
    cleaning of what verifies."""
    suffix = uuid.uuid4().hex[:6]
    settings = replace(Settings.from_env(), bootstrap_servers=broker.bootstrap, home=home,
                       clean_key=secrets.token_hex(32) if sealed else None,
                       id_authority=Settings.from_env().id_authority or "bench.newswire.example",
                       topics=Topics(articles=f"bench-articles-{suffix}", articles_partitions=partitions,
                                     dead_letter=f"bench-dlq-{suffix}", dead_letter_partitions=1))
    topics.ensure(settings)
    return settings


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``values``, by the inclusive method."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[min(998, max(0, round(pct * 10) - 1))]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_table(title: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """Print ``(measure, figure, peer or ceiling)`` rows as an aligned table.

    With ``NEWSWIRE_BENCH_ROWS`` set to a file, the rows are also appended to it as JSON
    lines, for ``bench/run_all.py`` to gather every benchmark into one table.
    """
    if os.environ.get("NEWSWIRE_BENCH_ROWS"):
        with open(os.environ["NEWSWIRE_BENCH_ROWS"], "a", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps({"title": title, "row": list(row)}) + "\n")
    header = ("measure", "figure", "peer / ceiling (same run)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    print(f"\n{title}  [{machine()}]")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


def progress(iterable=None, **options) -> tqdm:
    """A progress bar on a terminal; nothing when the output goes to a file or a pipe."""
    return tqdm(iterable, disable=None, **options)
