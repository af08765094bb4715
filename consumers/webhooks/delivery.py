"""One HTTP attempt to deliver a payload, and what came of it.

Only a 2xx answer is a success. Redirects are not followed (a 3xx is a failure with its
status: a partner's endpoint must answer where it was registered). Every failure keeps its
reason: the status code with the start of what the partner answered, or the connection
error, timeout or SSRF refusal.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, TypeVar

import aiohttp

from newswire.consumers.webhooks import policy, ssrf
from newswire.consumers.webhooks.config import Network

T = TypeVar("T")
#: how much of a failed answer's body its receipt keeps (what the partner said, for the operator)
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Response:
    status: int | None
    duration_ms: float
    error: str | None = None
    #: seconds a 429 or 503 asked us to wait
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """Delivered: a 2xx answer, or a drop folder's file written (no status, no error)."""
        return self.error is None

    @property
    def gone(self) -> bool:
        return self.status == 410


#: a deadline that passes while the event loop ran this much late was the pusher's own stall
LOOP_LATE_S = 0.02
#: after the deadline, the loop is given this long to read an answer that may have come in time
GRACE_S = 0.05


def failure(status: int, reason: str | None, said: bytes) -> str:
    """``HTTP 500 Internal Server Error: <the answer's first characters, on one line>``."""
    excerpt = " ".join(said[:EXCERPT_CHARS * 4].decode("utf-8", "replace").split())[:EXCERPT_CHARS]
    return f"HTTP {status} {reason or ''}".strip() + (f": {excerpt}" if excerpt else "")


def session(resolver: ssrf.GuardedResolver, *, per_host: int) -> aiohttp.ClientSession:
    """The pusher's one HTTP client: one connection pool for every partner, at most
    ``per_host`` connections to one host (the dispatcher keeps within it, so that a request
    never waits for a connection inside its timeout), every connection through the SSRF guard's
    resolver. Timeouts are :func:`post`'s."""
    connector = aiohttp.TCPConnector(resolver=resolver, limit=0, limit_per_host=per_host, ttl_dns_cache=10)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None),
                                 trust_env=False, auto_decompress=False,
                                 headers={"user-agent": "newswire-webhooks/0.1"})


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """``awaitable``'s result if the other side answers within ``timeout_s``; TimeoutError if not.

    The timeout measures the partner, not the pusher: a deadline that passes while the event
    loop was busy (its timer fired late) is moved on by as much, up to ``timeout_s`` more in all,
    and once it has passed the loop is given :data:`GRACE_S` to read an answer that came in
    while it was not looking. Only a deadline that passes on time with nothing read times out.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(awaitable)
    deadline = loop.time() + timeout_s
    latest = deadline + timeout_s
    graced = False
    while True:
        await asyncio.wait((task,), timeout=max(0.0, deadline - loop.time()))
        if task.done():
            return task.result()
        now = loop.time()
        late = now - deadline
        if now < latest and (late > LOOP_LATE_S or not graced):
            deadline, graced = now + max(late, GRACE_S), True
            continue
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise asyncio.TimeoutError


async def post(client: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], *,
               allow: tuple[Network, ...], timeout_s: float) -> Response:
    """POST ``body`` to ``url``; never raises for what the network or the partner does."""
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    async def exchange() -> Response:
        async with client.post(url, data=body, headers=headers, allow_redirects=False) as answer:
            said = await answer.read()
            wait = (policy.retry_after(answer.headers.get("Retry-After"))
                    if answer.status in (429, 503) else None)
            error = None if 200 <= answer.status < 300 else failure(answer.status, answer.reason, said)
            return Response(answer.status, elapsed(), error, wait)

    try:
        ssrf.check_literal(url, allow)
        return await within(exchange(), timeout_s)
    except ssrf.EndpointRefused as exc:
        return Response(None, elapsed(), f"refused by the SSRF guard: {exc}")
    except aiohttp.ClientConnectorError as exc:
        refused = exc.os_error if isinstance(exc.os_error, ssrf.EndpointRefused) else None
        if refused is None and isinstance(exc.__cause__, ssrf.EndpointRefused):
            refused = exc.__cause__
        if refused is not None:
            return Response(None, elapsed(), f"refused by the SSRF guard: {refused}")
        return Response(None, elapsed(), f"cannot connect: {exc}")
    except asyncio.TimeoutError:
        return Response(None, elapsed(), f"timed out after {timeout_s:g} s")
    except aiohttp.ClientError as exc:
        return Response(None, elapsed(), f"{type(exc).__name__}: {exc}")
