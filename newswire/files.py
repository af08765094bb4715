"""Files that appear whole or not at all, for the drop folders (the feeds' NewsML-G2 drop
folder and the partner push's drop-folder partners).

A file is written to a dot-named temporary file in the same directory (``.<name>.<random>.tmp``,
which pickup scripts skip as a hidden file), fsynced, renamed into place, and the directory
fsynced, so a reader never sees a partial file and a written file survives a power loss.
:func:`disk_full` tells a full disk from other I/O errors (consumers wait it out);
:func:`hold_lock` keeps a second process off what one process owns (state, a folder).
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterator

from newswire import logs

log = logs.get(__name__)

TEMP_SUFFIX = ".tmp"

#: a full filesystem, or the user's quota on it
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException | None) -> BaseException | None:
    """The error saying the disk (or quota) is full, ENOSPC/EDQUOT or SQLite's SQLITE_FULL, when
    ``exc`` is one or was raised from or while handling one (a failed ROLLBACK after it, say)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_pauses(first_s: float = 0.5, longest_s: float = 30.0) -> Iterator[float]:
    """Seconds to wait before each new try of a write refused for a full disk: doubling, bounded."""
    for n in itertools.count():
        yield min(first_s * 2 ** min(n, 32), longest_s)


class DiskFullWaits:
    """The pauses and log lines of one write tried again while the disk is full: :meth:`failed`
    for each failure, :meth:`resolved` once it went through."""

    def __init__(self, consumer: str, path: Path | None, **context):
        self.consumer, self.path, self.context = consumer, path, context
        self.pauses = disk_full_pauses()
        self.failures = 0

    def failed(self, exc: BaseException) -> float | None:
        """Log a failure for a full disk (``disk_full``: path, error, ``retry_in_s``) and return
        the pause before the next try; None when ``exc`` is not about a full disk (raise it)."""
        if (full := disk_full(exc)) is None:
            return None
        self.failures += 1
        delay = next(self.pauses)
        path = getattr(full, "filename", None) or self.path
        log.warning("disk_full", consumer=self.consumer, path=str(path) if path else None,
                    error=f"{type(full).__name__}: {full}", retry_in_s=delay, **self.context)
        return delay

    def resolved(self) -> None:
        if self.failures:
            log.info("disk_full_resolved", consumer=self.consumer, failures=self.failures, **self.context)


def retry_while_disk_full(step: Callable[[], object], *, consumer: str, path: Path | None,
                          stopping: threading.Event | None = None) -> bool:
    """Run ``step`` until it does not fail for a full disk (see :class:`DiskFullWaits`); any other
    error is raised. False when ``stopping`` was set during a pause (``step`` did not go through)."""
    waits = DiskFullWaits(consumer, path)
    stopping = stopping or threading.Event()
    while True:
        try:
            step()
            break
        except Exception as exc:
            if (delay := waits.failed(exc)) is None:
                raise
        if stopping.wait(delay):
            return False
    waits.resolved()
    return True


class LockHeld(RuntimeError):
    """Another process holds the lock; ``holder`` is what it wrote in the lock file."""

    def __init__(self, path: Path, holder: dict):
        super().__init__(f"{path} is held by pid {holder.get('pid', '(unknown)')}")
        self.path = path
        self.holder = holder

    @property
    def pid(self) -> int | str:
        return self.holder.get("pid", "(unknown)")


class Lock:
    """An exclusive ``flock`` on a lock file, held until :meth:`close` or the end of the process
    (the OS drops it then, also after kill -9, so a stale file never blocks anyone)."""

    def __init__(self, path: Path, about: dict):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(self._fd, 4096, 0)
            os.close(self._fd)
            try:
                holder = json.loads(text)
            except ValueError:  # being written, or unwritten for lack of space
                holder = {}
            raise LockHeld(path, holder if isinstance(holder, dict) else {}) from None
        try:  # who holds it, for the one line the next process prints; the lock holds without it
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps({"pid": os.getpid(), **about}).encode(), 0)
        except OSError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def hold_lock(path: Path, **about) -> Lock:
    """Take the lock file ``path`` (writing this process's pid and ``about`` in it as JSON);
    raises :class:`LockHeld`, naming the holder, when another process has it."""
    return Lock(path, about)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """Create ``directory``, fsyncing the parent of every directory created."""
    missing = []
    for path in [directory, *directory.parents]:
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_dir(path.parent)


def write_atomically(path: Path, data: bytes, *, create_dirs: bool = True) -> bool:
    """Put ``data`` at ``path`` whole (temp file, fsync, rename, fsync dir); False when already there.

    With ``create_dirs=False`` a missing directory is an error (FileNotFoundError) rather than
    created. Raises OSError for what the filesystem refuses; no temporary file is left then.
    """
    if path.is_file() and path.read_bytes() == data:
        return False
    if create_dirs:
        make_dirs(path.parent)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return True


def remove_temp_files(root: Path, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files a crash mid-write left in ``root``; returns them."""
    found = list((root.rglob if recursive else root.glob)(f".*{TEMP_SUFFIX}"))
    for temp in found:
        temp.unlink(missing_ok=True)
    return found
