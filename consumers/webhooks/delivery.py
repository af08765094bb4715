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

import aiohttp

from newswire.consumers.webhooks import policy, ssrf
from newswire.consumers.webhooks.config import Network

#: how much of a failed answer's body its receipt keeps (what the partner said, for the operator)
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Response:
    status: int | None
    duration_ms: float
    error: str | None = None
    #: seconds a 429 or 503 asked us to wait
    retry_after: float | None = None
    #: a drop-folder partner's file was written (no HTTP status: see :mod:`.drop`)
    stored: bool = False

    @property
    def ok(self) -> bool:
        return self.stored or (self.status is not None and 200 <= self.status < 300)

    @property
    def gone(self) -> bool:
        return self.status == 410


def failure(status: int, reason: str | None, said: bytes) -> str:
    """``HTTP 500 Internal Server Error: <the answer's first characters, on one line>``."""
    excerpt = " ".join(said[:EXCERPT_CHARS * 4].decode("utf-8", "replace").split())[:EXCERPT_CHARS]
    return f"HTTP {status} {reason or ''}".strip() + (f": {excerpt}" if excerpt else "")


def session(resolver: ssrf.GuardedResolver, timeout_s: float) -> aiohttp.ClientSession:
    """An HTTP client whose every connection goes through the SSRF guard's resolver.

    Its pool is not limited: the worker that owns it limits the partner's concurrency."""
    connector = aiohttp.TCPConnector(resolver=resolver, limit=0, ttl_dns_cache=10)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                 trust_env=False, auto_decompress=False,
                                 headers={"user-agent": "newswire-webhooks/0.1"})


async def post(client: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], *,
               allow: tuple[Network, ...], timeout_s: float) -> Response:
    """POST ``body`` to ``url``; never raises for what the network or the partner does."""
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        ssrf.check_literal(url, allow)
        async with client.post(url, data=body, headers=headers, allow_redirects=False) as answer:
            said = await answer.read()
            wait = (policy.retry_after(answer.headers.get("Retry-After"))
                    if answer.status in (429, 503) else None)
            error = None if 200 <= answer.status < 300 else failure(answer.status, answer.reason, said)
            return Response(answer.status, elapsed(), error, wait)
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
