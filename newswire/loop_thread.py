"""An asyncio loop in a thread of its own, for code whose caller is synchronous (tests,
benchmarks, a replay delivering through the pusher's worker)."""

from __future__ import annotations

import asyncio
import threading
from typing import Awaitable, Callable


class LoopThread:
    """Runs ``body(stop)`` in a new event loop in a daemon thread until :meth:`stop`.

    ``error`` holds what ``body`` raised, if anything. Usable as a context manager.
    """

    def __init__(self, body: Callable[[asyncio.Event], Awaitable[None]], name: str):
        self._body = body
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
            asyncio.run(main())
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
