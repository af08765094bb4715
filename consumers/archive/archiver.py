"""The archive consumer: every event stored exactly once, durably, before its offset is committed.

Per batch of the :class:`~newswire.bus.EventLoop`:

1. ``handle`` checks each event (the event contract) and takes it;
2. its write (``write_behind``: in the loop's writer thread, while the next batch is read and
   handled) skips the events whose ids are already archived (asked of the index once
   for the batch) or already in this batch, appends the others, as written, to the open segment
   of their publish date and schema, writes one block per touched segment and fsyncs it, then
   records the events and the segments' new durable sizes in one SQLite transaction;
3. the loop commits the Kafka offsets.

A ``kill -9`` between any two of these steps loses nothing (uncommitted offsets are read
again) and duplicates nothing: at start, :meth:`Archiver.recover` cuts every segment back
to its recorded durable size (dropping blocks the index never saw) and a re-read event
already in the index is skipped. Each run writes new segments; older ones are sealed.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import orjson

from newswire import bus, codec, disk, events, locks, logs, metrics, seal
from newswire.config import Settings, consumer_group

from .index import Index
from .segments import SegmentWriter, new_run_id, segment_name
from .storage import LocalStorage, Storage

log = logs.get(__name__)

#: the archive's count of records written (``newswire_outputs_produced_total``)
_RECORDS = metrics.OUTPUTS_PRODUCED.labels("archive", "record")

#: the archive's Kafka consumer group, unless ``NEWSWIRE_ARCHIVE_GROUP`` names another (:func:`group`)
GROUP = "newswire-archive"
#: static group membership: one archive writer per root, so one instance id
INSTANCE_ID = "newswire-archive-1"
#: a segment is sealed and a new one started past this size
MAX_SEGMENT_BYTES = 256 * 1024 * 1024
#: the archive's consumer options: batches of up to 2,000 events, so that a backfill pays its
#: fsyncs and index transaction once per 2,000 events rather than per 500
CONSUMER_OPTIONS = {"max_poll_records": 2000}


def default_root(settings: Settings) -> Path:
    return settings.home / "archive"


class ArchiveBusy(RuntimeError):
    """Another process writes to the same archive root (one writer per root)."""


@dataclass
class _Open:
    writer: SegmentWriter
    rows: list[dict] = field(default_factory=list)
    size: int = 0


class Archiver:
    """Writes events to segments and the index; use :meth:`handle` and :meth:`commit` in an EventLoop."""

    def __init__(self, root: Path, storage: Storage | None = None, *,
                 max_segment_bytes: int = MAX_SEGMENT_BYTES):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = locks.hold_lock(self.root / "writer.lock")
        except locks.LockHeld as exc:
            raise ArchiveBusy(f"another archive writer (pid {exc.pid}) is running on {self.root}") from None
        self.storage = storage or LocalStorage(self.root)
        self.index = Index(self.root / "index.sqlite")
        self.max_segment_bytes = max_segment_bytes
        self.run = new_run_id(datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f"))
        #: the module's logger bound once, for the lines written per event (the lazy proxy binds
        #: anew at each call, even for a level that drops the line)
        self.log = log.bind()
        self._open: dict[tuple[str, int], _Open] = {}
        self._numbers: dict[tuple[str, int], int] = {}
        #: the batch's events, appended to their segments by :meth:`commit`
        self._taken: deque[bus.Delivery] = deque()
        self._batch_ids: set[str] = set()
        self.archived = 0
        self.duplicates = 0
        # restarted on a full disk, it waits for room to record what it cut back
        disk.retry_while_disk_full(self.recover, consumer="archive", path=self.root)

    def recover(self) -> list[str]:
        """Bring segment files back to what the index says is durable; return what was done."""
        done = []
        for segment in self.index.segments():
            size = self.storage.size(segment.path)
            if segment.durable_size == 0:
                self.storage.delete(segment.path)
                self.index.forget_segment(segment.path)
                done.append(f"{segment.path}: removed (nothing committed in it)")
            elif size is None:
                done.append(f"{segment.path}: MISSING ({segment.durable_size} bytes were committed)")
                log.error("archive_segment_missing", segment=segment.path, durable_size=segment.durable_size)
            elif size > segment.durable_size:
                self.storage.truncate(segment.path, segment.durable_size)
                done.append(f"{segment.path}: cut {size - segment.durable_size} uncommitted bytes")
            elif size < segment.durable_size:
                done.append(f"{segment.path}: SHORT, {size} of {segment.durable_size} committed bytes")
                log.error("archive_segment_short", segment=segment.path, size=size,
                          durable_size=segment.durable_size)
        self.index.seal_all()
        for line in done:
            log.info("archive_recovered", action=line)
        return done

    def handle(self, delivery: bus.Delivery) -> None:
        """Take one event of the batch (written to its segment by :meth:`commit`)."""
        events.check(delivery.event)  # what replay and every reader of the archive rely on (a ValueError: dead letters)
        self._taken.append(delivery)

    def _append(self, taken: deque[bus.Delivery]) -> None:
        """Append the batch's events that the archive does not hold yet to their segments (the
        index asked once per batch, not once per event): the first step of a batch's write."""
        known = self.index.known([str(d.event["event_id"]) for d in taken])
        while taken:
            event, record = taken[0].event, taken[0].record
            event_id = str(event["event_id"])
            if event_id in self._batch_ids or event_id in known:
                self.duplicates += 1
                self.log.info("archive_duplicate_skipped", article_id=event["article_id"], version=event["version"],
                         event_id=event_id, topic=record.topic, partition=record.partition, offset=record.offset)
            else:
                self._write(event, record)
            taken.popleft()  # only once done: a full disk (add_segment) makes commit() go on from here

    def _write(self, event: codec.ArticleEvent, record) -> None:
        schema = codec.writer_schema(record.value)
        segment = self._segment(_day(record.timestamp // 86_400_000), schema)
        # a segment per writer schema, so the record's Avro body is already what the segment holds
        block_index = segment.writer.append(record.value[codec.HEADER_SIZE:])
        segment.rows.append({
            "event_id": str(event["event_id"]), "article_id": event["article_id"], "version": event["version"],
            "event_type": event["event_type"], "occurred_at": _ms(event["occurred_at"]),
            "published_at": record.timestamp,
            "categories": orjson.dumps(list(event.get("categories") or [])).decode(),
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "segment": segment.writer.path, "block_index": block_index, "cleaned": int(seal.is_clean(event)),
        })
        self._batch_ids.add(str(event["event_id"]))

    def commit(self) -> None:
        """Make the batch handled so far durable (the EventLoop's ``before_commit``)."""
        self._write_batch(self._taken)

    def take(self) -> Callable[[], None]:
        """The batch handled so far, and the call that makes it durable (the EventLoop's
        ``write_behind``: run in its writer thread while the next batch is handled, which
        :meth:`handle` gathers apart)."""
        taken, self._taken = self._taken, deque()
        return lambda: self._write_batch(taken)

    def _write_batch(self, taken: deque[bus.Delivery]) -> None:
        """Make a batch durable: its new events appended to their segments, blocks fsynced,
        then the index rows committed.

        Safe to call again after it raised (a full disk): events already appended are not
        appended twice, blocks already written are not written twice, and the rows stay until
        the index has them.
        """
        self._append(taken)
        touched = [segment for segment in self._open.values() if segment.rows]
        for segment in touched:
            if "block_offset" not in segment.rows[0]:
                block_offset, segment.size = segment.writer.flush()
                for row in segment.rows:
                    row["block_offset"] = block_offset
        rows = [row for segment in touched for row in segment.rows]
        sizes = {segment.writer.path: segment.size for segment in touched}
        if rows:
            self.index.commit(rows, sizes)
            for segment in touched:
                segment.rows = []
            _RECORDS.inc(len(rows))
            log.info("archive_committed", events=len(rows), segments=sorted(sizes))
            for row in rows:
                self.log.debug("archived", article_id=row["article_id"], version=row["version"],
                               event_id=row["event_id"], segment=row["segment"], topic=row["topic"],
                               partition=row["partition"], offset=row["offset"])
        self.archived += len(rows)
        self._batch_ids.clear()
        for key, segment in list(self._open.items()):
            if segment.size >= self.max_segment_bytes:
                segment.writer.close()
                del self._open[key]

    def _segment(self, day: str, schema: codec.Schema) -> _Open:
        key = (day, schema.version)
        if key not in self._open:
            number = self._numbers[key] = self._numbers.get(key, 0) + 1
            path = segment_name(day, self.run, schema, number)
            self.index.add_segment(path, day, schema.version)
            self._open[key] = _Open(SegmentWriter(self.storage, path, schema))
            log.info("archive_segment_opened", segment=path)
        return self._open[key]

    def close(self) -> None:
        """Close open segments (uncommitted events are dropped: their offsets are not committed)."""
        for segment in self._open.values():
            segment.writer.close()
        self._open.clear()
        self.index.close()
        self._lock.close()


@functools.lru_cache(maxsize=64)
def _day(days: int) -> str:
    """``YYYY-MM-DD`` (UTC) of a number of days since the epoch."""
    return (date(1970, 1, 1) + timedelta(days=days)).isoformat()


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def group() -> str:
    """The archive's consumer group: ``NEWSWIRE_ARCHIVE_GROUP``, or :data:`GROUP`."""
    return consumer_group("ARCHIVE", GROUP)


def event_loop(settings: Settings, root: Path | None = None, *, instance_id: str | None = INSTANCE_ID,
               consumer_overrides: dict | None = None, group_id: str | None = None
               ) -> tuple[bus.EventLoop, Archiver]:
    """The archive consumer: an :class:`~newswire.bus.EventLoop` in group ``group_id`` (by
    default :func:`group`: ``newswire-archive``).

    It is a static member of its group (``instance_id``): restarted after a crash, it takes
    its partitions back at once instead of waiting for the dead member's session to expire.
    """
    archiver = Archiver(root or default_root(settings))
    overrides = {**CONSUMER_OPTIONS, **({"group_instance_id": instance_id} if instance_id else {})}
    overrides.update(consumer_overrides or {})
    loop = bus.EventLoop(settings, group_id or group(), archiver.handle, write_behind=archiver.take, name="archive",
                         consumer_overrides=overrides, state=archiver.root)
    return loop, archiver


def leave_group(settings: Settings, instance_id: str, group_id: str | None = None) -> None:
    """After a clean stop, take the static member out of its group (``group_id``, by default
    :func:`group`) at once (a static member does not leave by itself), so that its offsets can
    be reset without waiting for the session to expire. A crashed archive simply takes its
    place back when restarted."""
    bus.leave_group(settings, group_id or group(), instance_id, "archive stopped")
