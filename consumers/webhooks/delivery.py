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

from newswire.consumers.webhooks import http1, policy, ssrf
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


def session(resolver: ssrf.GuardedResolver) -> http1.Pool:
    """The pusher's one HTTP client: kept-alive connections to every partner, every new one
    through the SSRF guard's resolver (:mod:`.http1`). Call it in the loop that uses it; the
    dispatcher keeps the requests in flight to one host within its limit."""
    return http1.Pool(resolver)


class Deadline:
    """``async with Deadline(timeout_s):`` raises TimeoutError if the other side has not answered
    within ``timeout_s``: a timer on the loop that cancels the waiting task (as
    ``asyncio.timeout`` does, with no task of its own), whose deadline measures the partner,
    not the pusher.

    A deadline that passes while the event loop was busy (its timer fired more than
    :data:`LOOP_LATE_S` late) is moved on by as much, up to ``timeout_s`` more in all; and once
    it has passed on time the loop is given :data:`GRACE_S` to read an answer that came in
    while it was not looking. Only a deadline that passes on time with nothing read times out.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.expired = False

    async def __aenter__(self) -> "Deadline":
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.deadline = self.loop.time() + self.timeout_s
        self.latest = self.deadline + self.timeout_s
        self.graced = False
        self.timer = self.loop.call_at(self.deadline, self._passed)
        return self

    def _passed(self) -> None:
        now = self.loop.time()
        late = now - self.deadline
        if now < self.latest and (late > LOOP_LATE_S or not self.graced):
            self.deadline, self.graced = now + max(late, GRACE_S), True
            self.timer = self.loop.call_at(self.deadline, self._passed)
            return
        self.expired = True
        self.task.cancel()

    async def __aexit__(self, kind, exc, tb) -> None:
        self.timer.cancel()
        if self.expired and kind is asyncio.CancelledError and self.task.uncancel() == 0:
            raise TimeoutError from exc


async def post(client: http1.Pool, url: str, body: bytes, headers: dict[str, str], *,
               allow: tuple[Network, ...], timeout_s: float) -> Response:
    """POST ``body`` to ``url``; never raises for what the network or the partner does."""
    started = time.perf_counter()
    try:
        ssrf.check_literal(url, allow)
        async with Deadline(timeout_s):
            answer = await client.post(url, body, headers)
    except ssrf.EndpointRefused as exc:
        return Response(None, _since(started), f"refused by the SSRF guard: {exc}")
    except http1.CannotConnect as exc:
        return Response(None, _since(started), f"cannot connect: {exc}")
    except TimeoutError:
        return Response(None, _since(started), f"timed out after {timeout_s:g} s")
    except (OSError, ValueError) as exc:
        return Response(None, _since(started), f"{type(exc).__name__}: {exc}")
    status = answer.status
    wait = policy.retry_after(answer.retry_after) if status in (429, 503) else None
    error = None if 200 <= status < 300 else failure(status, answer.reason, answer.body)
    return Response(status, _since(started), error, wait)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
