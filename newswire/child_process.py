"""How a helper process that newswire starts for one of its commands behaves: it dies with
the process that started it and leaves signals to it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from newswire import logs

#: prctl(2)'s option: the signal this process gets when the thread that started it ends
_PR_SET_PDEATHSIG = 1


def become_child(parent: int, logging: tuple | None) -> None:
    """Start a helper process (a replay's sender or reader, the pusher's Kafka side): SIGKILL it
    as soon as the process that started it dies (Linux), so that a command killed with -9 stops
    at that instant, as when it did everything in its own process (the helper's pipe's end is
    the fallback elsewhere); leave Ctrl-C and TERM to the parent (they reach the whole process
    group; the parent stops its helpers itself); log as the parent does (:func:`.logs.current`)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before that was set
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if logging is not None:
        logs.configure(*logging)
