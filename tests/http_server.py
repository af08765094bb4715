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


@contextlib.contextmanager
def serving(app: web.Application) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="test-http-server", daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the test HTTP server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
