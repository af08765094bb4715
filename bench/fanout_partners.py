"""Many partner endpoints in one process for ``bench/push.py --fanout``: every 127.x.y.z
address is its own partner (its own host, so its own connections and per-host limit in the
pusher's pool), all served by one listening socket on the loopback network.

The endpoint is a small HTTP/1.1 responder on :mod:`asyncio` (keep-alive, Content-Length
bodies) rather than an aiohttp application: on a 2-core machine shared with the pusher and
the broker, 10,000 partners' answers must cost little CPU. Each answers ``204`` after its
delay: about 80 ms ± 50 % (uniform), or 10 s for the slow ones. Signatures are not checked
here (the backlog run checks every one with ``standardwebhooks``). At SIGTERM it writes one
``webhook-id address received_at`` line per request, and the number of connections the pusher
opened to it beside (``out`` with the suffix ``.connections``).
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from pathlib import Path

ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def address(n: int) -> str:
    """Partner ``n``'s address: 127.1.0.1, 127.1.0.2, … (never 127.0.0.1)."""
    n += 1
    return f"127.{1 + n // 65536}.{n // 256 % 256}.{n % 256}"


class Endpoint(asyncio.Protocol):
    def __init__(self, server: "Partners"):
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.host = transport.get_extra_info("sockname")[0]
        self.server.connections += 1
        if not transport.get_extra_info("peername")[0].startswith("127."):
            transport.close()  # the wildcard socket serves loopback peers only

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            fields = dict(line.split(":", 1) for line in head[1:] if ":" in line)
            fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
            size = int(fields.get("content-length", "0"))
            if len(self.buffer) < end + 4 + size:
                return
            self.buffer = self.buffer[end + 4 + size:]
            self.server.seen.append((fields.get("webhook-id", "?"), self.host, time.time()))
            asyncio.get_running_loop().call_later(self.server.delay(self.host), self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(ANSWER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class Partners:
    def __init__(self, slow: set[str], fast_s: float, slow_s: float, seed: int = 7):
        self.slow = slow
        self.fast_s = fast_s
        self.slow_s = slow_s
        self.rng = random.Random(seed)
        self.seen: list[tuple[str, str, float]] = []
        self.connections = 0

    def delay(self, host: str) -> float:
        if host in self.slow:
            return self.slow_s
        return self.fast_s * self.rng.uniform(0.5, 1.5)


def serve(port: int, count: int, slow_every: int, out: Path, *, fast_s: float = 0.08, slow_s: float = 10.0) -> None:
    """Serve partners 0..count-1 on ``port`` (every ``slow_every``-th slow) until SIGTERM."""
    partners = Partners({address(n) for n in range(0, count, slow_every)} if slow_every else set(), fast_s, slow_s)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # IP_TRANSPARENT-free way to take every 127.x.y.z: the wildcard address, loopback peers only
        sock.bind(("0.0.0.0", port))
        sock.listen(4096)
        server = await loop.create_server(lambda: Endpoint(partners), sock=sock, backlog=4096)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        server.close()

    asyncio.run(main())
    out.write_text("".join(f"{i} {host} {at:.6f}\n" for i, host, at in partners.seen))
    out.with_suffix(".connections").write_text(f"{partners.connections}\n")
