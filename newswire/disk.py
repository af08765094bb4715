"""A full disk (or quota) is waited out, not crashed on: consumers try the refused write again
with a growing, bounded pause and a ``disk_full`` log line, and resume once there is room."""

from __future__ import annotations

import errno
import itertools
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterator

from newswire import logs

log = logs.get(__name__)

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
