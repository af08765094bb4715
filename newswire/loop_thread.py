"""An asyncio loop in a thread of its own, for code whose caller is synchronous (tests,
benchmarks, a replay delivering through the pusher's worker), and :func:`run`, the loop of
a process whose work is its event loop (the pusher)."""

from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, Callable, Coroutine, TypeVar

T = TypeVar("T")


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (libuv's: less CPU per socket event than
    asyncio's own), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[object, object, T]) -> T:
    """``asyncio.run(main)`` on :func:`new_loop`'s loop."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        return runner.run(main)


class LoopThread:
    """Runs ``body(stop)`` in a new event loop (``fast``: :func:`new_loop`'s) in a daemon thread
    until :meth:`stop`.

    ``error`` holds what ``body`` raised, if anything. Usable as a context manager.
    """

    def __init__(self, body: Callable[[asyncio.Event], Awaitable[None]], name: str, *, fast: bool = False):
        self._body = body
        self._fast = fast
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self._body(self._stop)
        try:
            run(main()) if self._fast else asyncio.run(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` in the loop's thread (a no-op once the loop has ended)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

    def stop(self, timeout: float = 60) -> None:
        if self._stop is not None:
            self.call_soon(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> "LoopThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
