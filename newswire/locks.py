"""One process at a time: an exclusive ``flock`` on a lock file that says who holds it.

``newswire run`` (one per installation), the pusher (one per state file), the archive (one
writer per root) and the drop folder (one writer per folder) each hold one. The OS drops the
lock when its process ends, even by ``kill -9``, so a stale file never blocks anyone; the pid
written in it is only there for the one line the refused process prints.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path


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
