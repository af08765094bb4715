"""The Python heap of a long-running process that must answer in milliseconds (the pusher).

CPython's cyclic garbage collector walks every container object of the process in a full
(generation 2) collection. A started process holds tens of thousands that live as long as it
does: modules, functions, classes, its registry and caches. In a started pusher a full
collection took 50-60 ms, and the event loop sent nothing meanwhile: the top of its latency.
"""

from __future__ import annotations

import gc


def started() -> None:
    """Say that the process has started (modules imported, its state loaded): what it holds
    now is collected once, then moved out of the collector's reach for good (:func:`gc.freeze`),
    so that later collections walk only what was made since."""
    gc.collect()
    gc.freeze()
