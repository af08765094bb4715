"""Reading the archive back: one event, a listing, every event of a window, and a full check.

Reads go through the index to the block that holds an event, so a damaged segment only
affects the events stored in its damaged blocks: they are reported (which file, what is
wrong) and everything else stays readable.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from newswire import codec
from newswire.codec import ArticleEvent

from .index import Entry, Index
from .segments import SegmentDamaged, Stored, read_block, scan
from .storage import LocalStorage, Storage


class NotArchived(LookupError):
    """No archived event matches the request."""


@dataclass(frozen=True)
class Problem:
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


class ArchiveReader:
    """Read-only access to an archive root (segments + ``index.sqlite``)."""

    def __init__(self, root: Path, storage: Storage | None = None, *, block_cache: int = 16):
        self.root = Path(root)
        self.storage = storage or LocalStorage(self.root)
        self.index = Index(self.root / "index.sqlite", readonly=True)
        self._blocks: OrderedDict[tuple[str, int], list[Stored]] = OrderedDict()
        self._schemas: dict[str, codec.Schema] = {}
        #: decoded blocks kept (a block holds the events of one archive commit, up to 2,000)
        self.block_cache = block_cache

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "ArchiveReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def entry(self, article_id: str, version: int | None = None) -> Entry:
        """The index entry of one version of an article (the latest by default)."""
        versions = self.index.versions(article_id)
        if not versions:
            raise NotArchived(f"article {article_id!r} is not in the archive")
        if version is None:
            return versions[-1]
        for entry in versions:
            if entry.version == version:
                return entry
        have = ", ".join(str(e.version) for e in versions)
        raise NotArchived(f"article {article_id!r} has no version {version} in the archive (versions: {have})")

    def schema_of(self, entry: Entry) -> codec.Schema:
        """The schema the event was written with (its segment's)."""
        if entry.segment not in self._schemas:
            self._schemas.update((s.path, codec.schema_version(s.schema_version)) for s in self.index.segments())
        return self._schemas[entry.segment]

    def _stored(self, entry: Entry) -> Stored:
        """The record of an index entry (its block read once for all its entries, and kept).

        Raises :class:`SegmentDamaged` when its block cannot be read or does not hold it.
        """
        key = (entry.segment, entry.block_offset)
        records = self._blocks.get(key)
        if records is None:
            records = read_block(self.storage, entry.segment, entry.block_offset)
            self._blocks[key] = records
            if len(self._blocks) > self.block_cache:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(key)
        if entry.block_index >= len(records):
            raise SegmentDamaged(entry.segment, f"block at offset {entry.block_offset} holds {len(records)} "
                                                f"events, the index expects event {entry.block_index}")
        record = records[entry.block_index]
        if record.event["event_id"] != entry.event_id:
            raise SegmentDamaged(entry.segment, f"block at offset {entry.block_offset} record {entry.block_index} "
                                                f"is event {record.event['event_id']}, the index says {entry.event_id}")
        return record

    def event(self, entry: Entry) -> ArticleEvent:
        """The archived event of an index entry, read as the newest schema (see :meth:`_stored`)."""
        return self._stored(entry).event

    def payload(self, entry: Entry) -> bytes:
        """The archived event of an index entry as it was written to Kafka: its single-object
        payload, the bytes as stored (nothing encoded again)."""
        return codec.MAGIC + self.schema_of(entry).fingerprint + self._stored(entry).body

    def get(self, article_id: str, version: int | None = None) -> ArticleEvent:
        return self.event(self.entry(article_id, version))

    def entries(self, **window) -> Iterator[Entry]:
        """Index entries in archive order (see :meth:`Index.entries` for the filters)."""
        return self.index.entries(**window)

    def events(self, entries: Iterator[Entry], problems: list[Problem]) -> Iterator[tuple[Entry, ArticleEvent]]:
        """The events of ``entries``; unreadable ones are appended to ``problems`` and skipped."""
        for entry in entries:
            try:
                yield entry, self.event(entry)
            except SegmentDamaged as exc:
                problems.append(Problem(exc.path, f"event {entry.event_id} ({entry.article_id} "
                                                  f"v{entry.version}): {exc.what}"))

    def verify(self) -> tuple[int, list[Problem]]:
        """Check every segment against the index; return (events verified, problems)."""
        problems: list[Problem] = []
        verified = 0
        known = set()
        for segment in self.index.segments():
            known.add(segment.path)
            expected: dict[int, list[Entry]] = defaultdict(list)
            for entry in self.index.entries(segment=segment.path):
                expected[entry.block_offset].append(entry)
            size = self.storage.size(segment.path)
            if size is None:
                problems.append(Problem(segment.path, f"file is missing; the index has "
                                                      f"{sum(map(len, expected.values()))} events in it"))
                continue
            if size != segment.durable_size:
                problems.append(Problem(segment.path, f"file has {size} bytes, the index committed "
                                                      f"{segment.durable_size}"))
            seen_blocks = set()
            try:
                for block in scan(self.storage, segment.path):
                    seen_blocks.add(block.offset)
                    entries = sorted(expected.get(block.offset, []), key=lambda e: e.block_index)
                    ids = [e["event_id"] for e in block.events]
                    if [e.event_id for e in entries] != ids:
                        problems.append(Problem(segment.path, f"block at offset {block.offset} holds "
                                                              f"{len(ids)} events that differ from the "
                                                              f"{len(entries)} the index lists there"))
                    else:
                        verified += len(ids)
            except SegmentDamaged as exc:
                problems.append(Problem(exc.path, exc.what))
            lost = [offset for offset in expected if offset not in seen_blocks]
            if lost:
                count = sum(len(expected[o]) for o in lost)
                problems.append(Problem(segment.path, f"{count} indexed events in {len(lost)} blocks could not "
                                                      f"be read (first block at offset {min(lost)})"))
        for path in self.storage.list("events"):
            if path not in known:
                problems.append(Problem(path, "file is not in the index"))
        return verified, problems
