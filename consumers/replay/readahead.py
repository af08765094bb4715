"""A replay's reading, decoding and rendering in a process of its own, a few batches ahead of the
replay's loop (:mod:`.runner`), so that on two cores the loop's look-ups, queueing and fsyncs
(:mod:`.targets`) run while the next events are read and rendered.

:class:`ReadAhead` is a :class:`~.sources.Source`: its :meth:`~ReadAhead.items` come from a child
process that makes the same source again (``make``), reads it from the resume positions on and
renders each event in the partner's format (:class:`Prerender`), in batches of
:data:`BATCH_EVENTS`, at most :data:`BATCHES_AHEAD` batches ahead. An event it rendered comes
over as its routing fields only (:func:`newswire.events.routing`, with its payload and render):
what the replay reads of it, at a tenth of the pickling (the whole decoded event took 40 µs an
event to pickle and unpickle, its routing fields 3 µs). The items arrive in the order
the source yields them (each partition's in offset order), so the target sees exactly what it
would see reading the source itself; a render made ahead is used only if the target queues the
event (:meth:`.targets.PartnerTarget.offer`). Counts and endings are the parent's own source's.

Its renders are kept in the file the live pusher keeps its own in (:func:`.payloads.kept_renders`,
a cache that may be deleted at any time, emptied when a release's renderers change): a backfill
in a format a replay or the live pushes already rendered decodes each event but renders none.

The child only reads: nothing it does is durable but that cache, so it cannot break a replay's
kill -9 safety (the checkpoint and the outbox are the parent's). It ends when the parent closes
it, and at once when the parent dies (:func:`newswire.child_process.become_child`), as a killed
replay's reading would.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from newswire import events, logs
from newswire.child_process import become_child
from newswire.consumers.webhooks import payloads
from newswire.formats.kept import Renders

from .sources import Item, Source

log = logs.get(__name__)

#: events per batch handed from the reading process to the replay
BATCH_EVENTS = 250
#: batches the reading process may be ahead of the replay (what it holds in memory beyond the
#: replay's own chunk: about 2,000 events, a few MiB)
BATCHES_AHEAD = 8
#: bytes of renders the reading process keeps (as a replay does: each event is rendered once)
RENDERS_KEPT = 4 * 1024 * 1024


class ReadAheadFailed(RuntimeError):
    """The reading process failed or ended before it had read everything (the message says why)."""


@dataclass(frozen=True)
class Prerender:
    """What the reading process renders each event in: a partner's format, for its authority;
    ``kept``: the file its renders are kept in across replays (:mod:`newswire.formats.kept`: a
    backfill of another partner in that format renders nothing again)."""

    fmt: str
    authority: str
    kept: Path | None = None

    def parts(self, renders: Renders, item: Item) -> tuple[bytes, bytes | None] | str:
        """The body of ``item`` (:meth:`.payloads.Renderer.parts`), or why it cannot be rendered."""
        try:
            return payloads.Renderer(item.event, at=datetime.now(timezone.utc), authority=self.authority,
                                     renders=renders).parts(self.fmt)
        except ValueError as exc:
            return str(exc)


class ReadAhead:
    """``make()``'s events, read and rendered (``prerender``; None: read only) in a child process."""

    def __init__(self, make: Callable[[], Source], prerender: Prerender | None = None):
        self.make = make
        self.prerender = prerender
        #: the parent's own source: counts and endings (whatever the child is doing meanwhile)
        self.source = make()
        self.name = self.source.name
        self.problems: list = getattr(self.source, "problems", [])
        self._process: multiprocessing.process.BaseProcess | None = None
        #: CPU seconds the reading process spent, and its renders made and kept ones used
        #: (known once it read everything)
        self.cpu_s: float | None = None
        self.rendered: tuple[int, int] | None = None

    def counts(self, resume: dict[int, int]) -> Counter:
        return self.source.counts(resume)

    def endings(self) -> dict[str, Item]:
        return self.source.endings()

    def items(self, resume: dict[int, int]) -> Iterator[Item]:
        context = multiprocessing.get_context("spawn")  # the replay has threads (Kafka, SQLite): no fork
        batches = context.Queue(BATCHES_AHEAD)
        self._process = context.Process(target=_read, args=(self.make, dict(resume), self.prerender, batches,
                                                            logs.current(), os.getpid()),
                                        name=f"read-{self.name}", daemon=True)
        self._process.start()
        while True:
            try:
                kind, body = batches.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    raise ReadAheadFailed(f"the reading process ended with exit code {self._process.exitcode}")
                continue
            if kind == "failed":
                raise ReadAheadFailed(f"the reading process failed: {body}")
            if kind == "end":
                problems, self.cpu_s, self.rendered = body
                self.problems.extend(problems)
                log.info("replay_read_ahead_done", source=self.name, cpu_s=round(self.cpu_s, 2),
                         rendered=self.rendered[0], kept=self.rendered[1])
                return
            for partition, offset, timestamp_ms, event, payload, rendered in body:
                yield Item(partition, offset, timestamp_ms, event, payload, rendered)

    def close(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()  # it only reads: nothing of it needs to end cleanly
        if self._process is not None:
            self._process.join(10)
        self.source.close()


def _read(make: Callable[[], Source], resume: dict[int, int], prerender: Prerender | None,
          batches: multiprocessing.Queue, logging: tuple | None, parent: int) -> None:
    """The reading process: ``make()``'s items from ``resume`` on, rendered, in batches (module doc)."""
    become_child(parent, logging)  # the replay stops it (close)
    source = make()
    renders = Renders(prerender.authority, max_bytes=RENDERS_KEPT, path=prerender.kept) if prerender else None
    try:
        batch: list[Item] = []
        for item in source.items(resume):
            batch.append(item)
            if len(batch) >= BATCH_EVENTS:
                batches.put(("items", _handed_over(batch, prerender, renders)))
                batch = []
        if batch:
            batches.put(("items", _handed_over(batch, prerender, renders)))
        problems = getattr(source, "problems", [])
        rendered = (renders.made, renders.hits) if renders else (0, 0)
        if renders:
            renders.close()  # its last rows written before the replay may stop this process
        times = os.times()
        batches.put(("end", (list(problems), times.user + times.system, rendered)))
        problems.clear()  # the replay says them (ArchiveSource.close), once
    except Exception as exc:  # said to the replay, which stops with it
        log.exception("replay_read_ahead_failed")
        batches.put(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        batches.close()
        batches.join_thread()  # what was put is handed over before the process ends
        source.close()


def _handed_over(items: list[Item], prerender: Prerender | None, renders: Renders | None) -> list[tuple]:
    """A batch as the reading process hands it over: each item rendered (``prerender``), the
    kept renders of the batch looked up at once; an item that comes rendered comes as its
    routing fields only (module doc)."""
    if prerender is None:
        return [(i.partition, i.offset, i.timestamp_ms, i.event, i.payload, None) for i in items]
    payloads.load_kept(renders, [i.event for i in items], prerender.fmt)
    return [(i.partition, i.offset, i.timestamp_ms, events.routing(i.event), i.payload,
             {prerender.fmt: prerender.parts(renders, i)}) for i in items]
