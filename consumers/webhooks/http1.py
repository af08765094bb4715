"""The pusher's HTTP/1.1 client: POSTs over kept-alive connections, one pool for every partner.

Lean on purpose. A pusher sends thousands of small POSTs a second to thousands of hosts, and a
general client's work per request (a request and a response object, header multidicts, a
task per timeout, cookie jars, redirects, proxies) was most of its CPU per delivery. Here an
attempt is one write of the request and one parse of the answer with ``httptools`` (llhttp,
the parser of Node.js) straight from the connection's protocol callbacks:

- connections are kept alive per origin (scheme, host, port) and reused last-in first-out;
  one idle longer than :data:`KEEPALIVE_S` is closed (aiohttp's default; a partner's server
  that closes an idle connection sooner is seen doing so, and the connection is not reused).
  The pool opens a connection whenever none is idle: the dispatcher keeps the requests in
  flight to one host within its limit, so they never queue here inside their timeout (and,
  when it is busy, asks :meth:`Pool.idle_to` before a partner's second request in flight, so
  that a flash opens one connection per partner). Idle
  connections are kept only while the file-descriptor limit (``ulimit -n``) leaves room for
  the requests in flight beside them;
- every new connection goes through the SSRF guard: a host name is resolved by
  :class:`.ssrf.GuardedResolver`, which refuses addresses partners may not be on (a literal
  IP is checked before each request by :func:`.ssrf.check_literal`, see :mod:`.delivery`);
- ``https`` is verified against the system's trust store (``ssl.create_default_context``:
  certificate chain, host name, SNI);
- an answer is its status, reason, ``Retry-After`` and at most :data:`MAX_BODY` bytes of its
  body (what a failure's receipt quotes); a longer body ends the exchange there and closes
  the connection. A 1xx interim answer is skipped; redirects are not followed.

Timeouts are the caller's (:class:`.delivery.Deadline`, a timer on the loop): a request
cancelled mid-way closes its connection, whose state is then unknown.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote, urlsplit

import httptools

from newswire.consumers.webhooks import ssrf

#: a connection idle this long is closed rather than reused
KEEPALIVE_S = 15.0
#: the most of an answer's body kept (and read: past it the connection is closed)
MAX_BODY = 64 * 1024
USER_AGENT = "newswire-webhooks/0.1"
#: file descriptors left for the rest of the process (state store, Kafka, logs)
RESERVED_FDS = 256
#: what a URL's path and query keep as they are (the rest is percent-encoded, as browsers send it)
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"


class CannotConnect(OSError):
    """No connection could be opened to the endpoint (refused, unreachable, TLS failed, SSRF)."""


class ProtocolError(OSError):
    """The other side broke HTTP/1.1: closed the connection before its answer was whole, or
    sent what is not an HTTP answer."""


class Answer(NamedTuple):
    status: int
    reason: str
    retry_after: str | None
    #: the body's first :data:`MAX_BODY` bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class Target:
    """A URL as the client sends to it: its origin and the request's fixed first lines."""

    origin: tuple[str, str, int]
    literal: bool
    head: bytes


class Connection(asyncio.Protocol):
    """One kept-alive connection to one origin; one request at a time."""

    def __init__(self, pool: "Pool", origin: tuple[str, str, int]):
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.idle_since = 0.0
        #: counted in the pool's open connections (until closed)
        self.counted = False
        self._start()

    def _start(self) -> None:
        self.reason = b""
        self.retry_after: str | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.headers_done = False

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        self.waiter = self.pool.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self._uncount()
        if self.transport is not None:
            self.transport.close()

    def _uncount(self) -> None:
        if self.counted:
            self.counted = False
            self.pool.open -= 1

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.counted = True
        self.pool.open += 1

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the partner switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"not an HTTP/1.1 answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._uncount()
        if self.waiter is not None and not self.waiter.done():
            if self.headers_done and not self.parser.should_keep_alive():
                self._done(keep=False)  # a body that ends with the connection
            else:
                what = "before its answer was whole" if self.headers_done else "without answering"
                self.waiter.set_exception(ProtocolError(f"the partner closed the connection {what}"
                                                        + (f": {exc}" if exc else "")))
        self.waiter = None

    # --- httptools callbacks ---

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self.retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.waiter is None:
            return  # after an answer ended early
        if self.size < MAX_BODY:
            self.body.append(body[:MAX_BODY - self.size])
        self.size += len(body)
        if self.size > MAX_BODY:
            self._done(keep=False)

    def on_message_complete(self) -> None:
        if self.waiter is None:
            return
        if self.parser.get_status_code() < 200:  # 100 Continue, 103 Early Hints: the answer follows
            self._start()
            return
        self._done(keep=self.parser.should_keep_alive())

    def _done(self, *, keep: bool) -> None:
        answer = Answer(self.parser.get_status_code(), self.reason.decode("latin-1").strip(), self.retry_after,
                        b"".join(self.body))
        waiter, self.waiter = self.waiter, None
        self._start()
        if keep and not self.closed:
            self.pool.give_back(self)
        else:
            self.close()
        if not waiter.done():
            waiter.set_result(answer)

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class Pool:
    """Kept-alive connections to every partner's origin (see the module's docstring)."""

    def __init__(self, resolver: ssrf.GuardedResolver, *, in_flight: int, keepalive_s: float = KEEPALIVE_S):
        self.resolver = resolver
        self.keepalive_s = keepalive_s
        #: connections open, and the most kept idle: what the file-descriptor limit leaves
        #: beside ``in_flight`` requests and the process's other files
        self.open = 0
        self.max_idle = max(16, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - RESERVED_FDS - in_flight)
        self.loop = asyncio.get_running_loop()
        self.idle: dict[tuple[str, str, int], list[Connection]] = defaultdict(list)
        self._targets: dict[str, Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._sweeper = self.loop.call_later(keepalive_s, self._sweep)

    def target(self, url: str) -> Target:
        if (target := self._targets.get(url)) is None:
            parts = urlsplit(url)
            host, port = ssrf.host_port(url)
            path = quote(parts.path or "/", safe=_PATH_SAFE) + (f"?{quote(parts.query, safe=_QUERY_SAFE)}"
                                                                 if parts.query else "")
            host_header = parts.netloc.rpartition("@")[2]
            head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
            _check_line(head)
            target = self._targets[url] = Target((parts.scheme, host, port), ssrf.literal(host) is not None,
                                                 head.encode("ascii"))
        return target

    async def post(self, url: str, body: bytes | tuple[bytes, ...], headers: dict[str, str]) -> Answer:
        """POST ``body`` (whole, or its pieces one after the other) with ``headers`` (values
        without line breaks: ValueError) and read the answer. The request's bytes are made for
        the write and not kept while the answer is awaited (thousands of requests are)."""
        target = self.target(url)
        body = (body,) if isinstance(body, bytes) else body
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        _check_line(fields, expected=len(headers))
        head = b"%s%sContent-Length: %d\r\n\r\n" % (target.head, fields.encode("latin-1"), sum(map(len, body)))
        conn = self._take(target.origin) or await self._connect(target)
        try:
            return await conn.request(b"".join((head, *body)))
        except BaseException:
            conn.close()  # cancelled (timed out) or failed mid-way: what it would read next is unknown
            raise

    def idle_to(self, url: str) -> int:
        """Connections to ``url``'s origin kept alive, idle (POSTs that would open none)."""
        return len(self.idle.get(self.target(url).origin, ()))

    def give_back(self, conn: Connection) -> None:
        if self.open > self.max_idle:  # (at most ``in_flight`` of them busy) keep it only under the limit
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self.idle[conn.origin].append(conn)

    def _take(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self.idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed and time.monotonic() - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
        return None

    async def _connect(self, target: Target) -> Connection:
        scheme, host, port = target.origin
        try:
            if target.literal:
                addresses = [(socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))]
            else:
                addresses = [(r["family"], r["host"]) for r in
                             await self.resolver.resolve(host, port, family=socket.AF_UNSPEC)]
        except ssrf.EndpointRefused:
            raise
        except OSError as exc:
            raise CannotConnect(f"{host}: {exc}") from exc
        tls = self._tls_context() if scheme == "https" else None
        failed: list[str] = []
        for family, address in addresses:
            try:
                _, conn = await self.loop.create_connection(
                    lambda: Connection(self, target.origin), address, port, family=family, ssl=tls,
                    server_hostname=host if tls else None)
                return conn
            except (OSError, ssl.SSLError) as exc:
                failed.append(f"{address}:{port}: {exc}")
        raise CannotConnect("; ".join(failed) or f"{host} has no address")

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _sweep(self) -> None:
        """Close the connections idle too long (a partner that stopped getting stories)."""
        now = time.monotonic()
        for origin in list(self.idle):
            kept = [c for c in self.idle[origin] if not c.closed and now - c.idle_since < self.keepalive_s]
            for conn in self.idle[origin]:
                if conn not in kept:
                    conn.close()
            if kept:
                self.idle[origin] = kept
            else:
                del self.idle[origin]
        self._sweeper = self.loop.call_later(self.keepalive_s, self._sweep)

    async def close(self) -> None:
        self._sweeper.cancel()
        for idle in self.idle.values():
            for conn in idle:
                conn.close()
        self.idle.clear()
        await self.resolver.close()


def _check_line(text: str, expected: int | None = None) -> None:
    """Header lines must not carry a line break of their own (a value could add a header)."""
    lines = text.count("\n")
    if "\r" in text.replace("\r\n", "") or (expected is not None and lines != expected) \
            or (expected is None and lines != text.count("\r\n")):
        raise ValueError(f"a request header holds a line break: {text!r}")
