"""Run an aiohttp application as a real HTTP server on 127.0.0.1, in a thread of its own.

For tests whose client is synchronous (a browser, a subprocess, kafka-python threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Iterator

from aiohttp import web

from newswire.broker import free_port
from newswire.loop_thread import LoopThread


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    listening = threading.Event()

    async def serve(stop: asyncio.Event) -> None:
        runner = web.AppRunner(app)
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            listening.set()
            await stop.wait()
        finally:
            await runner.cleanup()

    server = LoopThread(serve, name="test-http-server")
    listening.wait(15)
    if server.error is not None or not listening.is_set():
        server.stop(15)
        raise RuntimeError(f"the test HTTP server did not start: {server.error!r}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(15)
