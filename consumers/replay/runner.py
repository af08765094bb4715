"""The replay loop: events of a source into a target, at a bounded rate, with a progress bar,
a checkpoint after every durable step, and a summary at the end."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable

from tqdm import tqdm

from newswire import logs

from .checkpoint import Checkpoint
from .sources import Source
from .targets import Target

log = logs.get(__name__)


#: events offered between two commits at most (and read ahead, their look-ups made at once): a
#: commit (the outbox's transaction, fsynced, then the checkpoint's) per 2,000 events or second
BATCH = 2000


class RateLimit:
    """At most ``per_second`` calls of :meth:`wait` per second (None: no limit)."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval


@dataclass
class Summary:
    source: str
    target: str
    dry_run: bool
    resumed: bool
    #: partition → outcome → count (this run)
    partitions: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    seconds: float = 0.0
    interrupted: bool = False
    #: outcome → count over every run of this replay (with the resumed ones)
    overall: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(sum(c.values()) for c in self.partitions.values())

    def outcomes(self) -> Counter:
        total = Counter()
        for counts in self.partitions.values():
            total.update(counts)
        return total

    def rows(self) -> list[dict]:
        """Per partition: its events and their outcomes (`replay --partner … --json`)."""
        return [{"partition": p, "events": sum(c.values()), "outcomes": dict(sorted(c.items()))}
                for p, c in sorted(self.partitions.items())]

    def lines(self) -> list[str]:
        what = "would replay" if self.dry_run else ("replayed" if not self.interrupted else "INTERRUPTED after")
        rate = self.events / self.seconds if self.seconds else 0.0
        lines = [f"{what} {self.events} events from {self.source} to {self.target}"
                 f"{' (resumed from a checkpoint)' if self.resumed else ''} in {self.seconds:.1f} s ({rate:.0f}/s)"]
        for partition in sorted(self.partitions):
            counts = self.partitions[partition]
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(f"  partition {partition}: {sum(counts.values())} ({detail})")
        totals = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes().items()))
        lines.append(f"  total: {totals or 'nothing'}")
        if self.interrupted:
            lines.append("  run the same command again to resume from the checkpoint")
        return lines


def replay(source: Source, target: Target, checkpoint: Checkpoint, *, dry_run: bool = False,
           rate: float | None = None, progress: bool = True, batch: int = BATCH, every_s: float = 1.0,
           stop: threading.Event | None = None, after_commit: Callable[[], None] | None = None) -> Summary:
    """Offer every event of ``source`` (from the checkpoint on) to ``target``, committing (and
    checkpointing) every ``batch`` events or ``every_s`` seconds; see the module doc."""
    summary = Summary(source.name, target.name, dry_run, checkpoint.resumed)
    limiter = RateLimit(rate)
    stop = stop or threading.Event()
    remaining = source.counts(checkpoint.next)
    positions: dict[int, int] = {}
    offered = Counter()
    started = time.monotonic()

    last_commit = time.monotonic()

    def commit() -> None:
        nonlocal last_commit
        last_commit = time.monotonic()
        target.commit()
        checkpoint.next.update(positions)
        for outcome, count in offered.items():
            checkpoint.outcomes[outcome] = checkpoint.outcomes.get(outcome, 0) + count
        positions.clear()
        offered.clear()
        if not dry_run:
            checkpoint.save()
        if after_commit:
            after_commit()

    # a chunk is read ahead and its look-ups made at once (target.prefetch), then offered one by
    # one and committed; at a bounded rate, no more than every_s seconds' worth is read ahead
    chunk_size = max(1, min(batch, int(rate * every_s))) if rate else batch
    items = source.items(checkpoint.next)
    with tqdm(total=sum(remaining.values()), unit="event", desc=f"{source.name} → {target.name}",
              disable=not progress, dynamic_ncols=True, mininterval=0.5) as bar:
        while not summary.interrupted and (chunk := list(itertools.islice(items, chunk_size))):
            target.prefetch(chunk)
            for item in chunk:
                limiter.wait()
                outcome = target.offer(item)
                summary.partitions[item.partition][outcome] += 1
                offered[outcome] += 1
                positions[item.partition] = item.offset + 1
                bar.update()
                if stop.is_set():
                    summary.interrupted = True
                    break
                if time.monotonic() - last_commit >= every_s:
                    commit()
                    target.prefetch(chunk)  # what the commit made the target forget
            commit()
    summary.seconds = time.monotonic() - started
    summary.overall = dict(checkpoint.outcomes)
    if not dry_run and not summary.interrupted:
        checkpoint.finish()
    log.info("replay_finished" if not summary.interrupted else "replay_interrupted", source=source.name,
             target=target.name, events=summary.events, dry_run=dry_run, outcomes=dict(summary.outcomes()))
    return summary
