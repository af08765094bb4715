"""Helper processes that newswire starts for one of its commands (the pusher's Kafka side, a
replay's sender): a fresh interpreter running one function, talking to its parent over a pipe.

A :class:`Child` is ``python -c`` started with :mod:`subprocess`, not :mod:`multiprocessing`:
the commands have threads (asyncio's executor, SQLite, Kafka), so a fork is unsafe, and
multiprocessing's ``spawn`` also starts its resource tracker (a third process, 13 MiB, for
semaphores these helpers do not use) and re-imports the command's ``__main__``. The pipe is a
:class:`multiprocessing.connection.Connection` over a socket pair (pickled messages); the
child's first message on it is what the function is called with.

The child dies with its parent (Linux: ``PR_SET_PDEATHSIG``, so a command killed with -9 stops
at that instant, as when it did everything in one process; the pipe's end is the fallback
elsewhere), leaves Ctrl-C and TERM to the parent (they reach the whole process group; the
parent stops its helpers itself) and logs as the parent does (:func:`.logs.current`).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any, Callable

from newswire import logs

#: prctl(2)'s option: the signal this process gets when the thread that started it ends
_PR_SET_PDEATHSIG = 1
_BOOT = "from newswire.child_process import _boot; _boot()"


class Child:
    """``target(pipe, *args)`` in a child process (see the module's docstring); ``target`` is a
    module-level function and ``args`` are pickled. :attr:`pipe` is the parent's end."""

    def __init__(self, target: Callable[..., Any], *args: Any, name: str):
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, name, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL)
        self.pipe = Connection(ours.detach())
        # what finds the target's modules first, then what needs them to be unpickled
        self.pipe.send((sys.path, f"{target.__module__}:{target.__qualname__}", os.getpid()))
        self.pipe.send((args, logs.current()))

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def exitcode(self) -> int | None:
        """None while it runs; a negative code is the signal that ended it."""
        return self.process.poll()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for it to end; whether it has."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        self.process.kill()
        self.join(5)

    def ended(self) -> str:
        """How it ended, said for a person."""
        code = self.process.poll()
        if code is not None and code < 0:
            return f"it was killed by signal {-code} ({signal.Signals(-code).name})"
        return f"it ended with exit code {code}"


def _boot() -> None:
    """The child's side of :class:`Child`: ``python -c _BOOT <name> <fd of the pipe>``."""
    pipe = Connection(int(sys.argv[2]))
    path, target, parent = pipe.recv()
    sys.path[:] = path
    args, logging = pipe.recv()
    become_child(parent, logging)
    module, _, function = target.partition(":")
    getattr(importlib.import_module(module), function)(pipe, *args)


def become_child(parent: int, logging: tuple | None) -> None:
    """What a helper process does first: die with ``parent``, leave signals to it, log as it does."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before that was set
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if logging is not None:
        logs.configure(*logging)
