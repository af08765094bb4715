"""Where archive segment files live: one small interface, the local filesystem by default.

The archive needs only these operations from a store. Segments are append-only while
they are written and immutable once closed, so an object store fits behind the same
interface (see docs/archive.md: segments are staged locally and uploaded when sealed;
reads are ranged GETs at the block offsets the index records).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol


class Storage(Protocol):
    """The operations the archive performs on segment files, by relative path (``events/…``)."""

    def create(self, path: str) -> BinaryIO:
        """A new, empty file opened for unbuffered writing (its directory made durable too)."""

    def sync(self, fo: BinaryIO) -> None:
        """Make everything written to ``fo`` so far durable (survives a crash of the process or host)."""

    def open_read(self, path: str) -> BinaryIO:
        """The file opened for seekable binary reading."""

    def size(self, path: str) -> int | None:
        """The file's size in bytes, or None when it does not exist."""

    def truncate(self, path: str, size: int) -> None:
        """Cut the file to ``size`` bytes, durably."""

    def delete(self, path: str) -> None:
        """Remove the file (no error when it is already gone)."""

    def list(self, prefix: str = "") -> Iterator[str]:
        """Relative paths of every file under ``prefix``, sorted."""


class LocalStorage:
    """Segment files under one directory of the local filesystem, fsynced file and directory."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _full(self, path: str) -> Path:
        return self.root / path

    def create(self, path: str) -> BinaryIO:
        full = self._full(path)
        new_dirs = [p for p in [full.parent, *full.parent.parents] if not p.exists()]
        full.parent.mkdir(parents=True, exist_ok=True)
        fo = open(full, "xb", buffering=0)  # nothing held back to fail later, in close()
        for directory in [full.parent, *(p.parent for p in new_dirs)]:
            _fsync_dir(directory)
        return fo

    def sync(self, fo: BinaryIO) -> None:
        fo.flush()
        os.fsync(fo.fileno())

    def open_read(self, path: str) -> BinaryIO:
        return open(self._full(path), "rb")

    def size(self, path: str) -> int | None:
        try:
            return self._full(path).stat().st_size
        except FileNotFoundError:
            return None

    def truncate(self, path: str, size: int) -> None:
        with open(self._full(path), "r+b") as fo:
            fo.truncate(size)
            fo.flush()
            os.fsync(fo.fileno())

    def delete(self, path: str) -> None:
        full = self._full(path)
        full.unlink(missing_ok=True)
        if full.parent.exists():
            _fsync_dir(full.parent)

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._full(prefix)
        if not base.exists():
            return iter(())
        return iter(sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file()))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
