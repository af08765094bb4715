"""Avro object container segments: append-only files of events in their writer schema.

A segment holds events of one publish date written with one schema version; its
container header carries that schema, so every record is stored exactly as it was
written to Kafka (the Avro body of the single-object payload is the same binary
encoding as a container record). A block is written only when the archive commits,
so each commit appends one block per segment it touched, at an offset the index keeps.
Reading resolves the writer schema against the newest one, like the codec does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import fastavro

from newswire import codec
from newswire.codec import ArticleEvent

from .storage import Storage

#: the block codec: deflate is built into fastavro (snappy and zstandard need extra packages)
CODEC = "deflate"
#: never cut a block by size: a block is exactly the events of one commit
_NO_AUTO_BLOCK = 1 << 62


class SegmentDamaged(Exception):
    """A segment that cannot be read (missing, truncated or corrupt) at a known place."""

    def __init__(self, path: str, what: str):
        super().__init__(f"{path}: {what}")
        self.path = path
        self.what = what


class SegmentWriter:
    """Appends events to one open segment; :meth:`flush` writes them as one block and syncs it."""

    def __init__(self, storage: Storage, path: str, schema: codec.Schema):
        self.storage = storage
        self.path = path
        self.schema = schema
        self.fo: BinaryIO = storage.create(path)
        self._avro = fastavro.write.Writer(self.fo, schema.parsed, codec=CODEC, sync_interval=_NO_AUTO_BLOCK,
                                           metadata={"newswire.schema_version": str(schema.version)})
        self.pending = 0

    def append(self, event: ArticleEvent) -> int:
        """Buffer one event; return its index in the next block."""
        self._avro.write(event)
        self.pending += 1
        return self.pending - 1

    def flush(self) -> tuple[int, int]:
        """Write the buffered events as one block, fsync; return (block offset, durable size)."""
        block_offset = self.fo.tell()
        self._avro.flush()
        self.storage.sync(self.fo)
        self.pending = 0
        return block_offset, self.fo.tell()

    def close(self) -> None:
        self.fo.close()


def segment_name(day: str, run: str, schema: codec.Schema, number: int) -> str:
    """``events/YYYY/MM/DD/<run>-v<schema>-<n>.avro``; ``run`` sorts by start time."""
    return f"events/{day.replace('-', '/')}/{run}-v{schema.version}-{number:04d}.avro"


def new_run_id(started: str) -> str:
    return f"{started}-{uuid.uuid4().hex[:6]}"


def _event(record: ArticleEvent) -> ArticleEvent:
    if isinstance(record.get("event_id"), uuid.UUID):
        record["event_id"] = str(record["event_id"])
    return record


@dataclass
class Block:
    offset: int
    size: int
    events: list[ArticleEvent]


def read_block(storage: Storage, path: str, offset: int, reader: codec.Schema | None = None) -> list[ArticleEvent]:
    """The events of the block at ``offset``, read as ``reader`` (the newest schema by default)."""
    reader = reader or codec.latest()
    try:
        with storage.open_read(path) as fo:
            blocks = fastavro.block_reader(fo, reader.parsed)
            fo.seek(offset)
            block = next(blocks)
            return [_event(r) for r in block]
    except FileNotFoundError:
        raise SegmentDamaged(path, "file is missing") from None
    except StopIteration:
        raise SegmentDamaged(path, f"no block at offset {offset}: the file ends before it") from None
    except Exception as exc:  # fastavro raises many kinds on damaged input
        raise SegmentDamaged(path, f"block at offset {offset} is unreadable: {type(exc).__name__}: {exc}") from exc


def scan(storage: Storage, path: str, reader: codec.Schema | None = None) -> Iterator[Block]:
    """Every block of a segment in order; raises :class:`SegmentDamaged` where reading fails."""
    reader = reader or codec.latest()
    try:
        fo = storage.open_read(path)
    except FileNotFoundError:
        raise SegmentDamaged(path, "file is missing") from None
    with fo:
        try:
            blocks = fastavro.block_reader(fo, reader.parsed)
        except Exception as exc:
            raise SegmentDamaged(path, f"header is unreadable: {type(exc).__name__}: {exc}") from exc
        offset = fo.tell()
        while True:
            try:
                block = next(blocks)
                events = [_event(r) for r in block]
            except StopIteration:
                return
            except Exception as exc:
                raise SegmentDamaged(
                    path, f"block at offset {offset} is unreadable: {type(exc).__name__}: {exc}") from exc
            yield Block(block.offset, block.size, events)
            offset = block.offset + block.size
