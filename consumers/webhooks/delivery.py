"""One HTTP attempt to deliver a payload, and what came of it.

Only a 2xx answer is a success. Redirects are not followed (a 3xx is a failure with its
status: a partner's endpoint must answer where it was registered). Every failure keeps its
reason: the status code with the start of what the partner answered, or the connection
error, timeout or SSRF refusal.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
import weakref
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


def session(resolver: ssrf.GuardedResolver, *, in_flight: int) -> http1.Pool:
    """The pusher's one HTTP client: kept-alive connections to every partner, every new one
    through the SSRF guard's resolver (:mod:`.http1`). Call it in the loop that uses it; the
    dispatcher keeps the requests in flight within ``in_flight`` (and to one host within its
    limit)."""
    return http1.Pool(resolver, in_flight=in_flight)


class Deadline:
    """``async with Deadline(timeout_s):`` raises TimeoutError if the other side has not answered
    within ``timeout_s``: a deadline that cancels the waiting task when it passes (as
    ``asyncio.timeout`` does, with no task of its own), that measures the partner, not the
    pusher, and that costs no timer of its own (:class:`_Deadlines`).

    A deadline that passes while the event loop was busy (the loop looked more than
    :data:`LOOP_LATE_S` late) is moved on by as much, up to ``timeout_s`` more in all; and once
    it has passed on time the loop is given :data:`GRACE_S` to read an answer that came in
    while it was not looking. Only a deadline that passes on time with nothing read times out.
    """

    __slots__ = ("timeout_s", "expired", "task", "at", "latest", "graced")

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.expired = False
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "Deadline":
        loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.at = loop.time() + self.timeout_s
        self.latest = self.at + self.timeout_s
        self.graced = False
        _Deadlines.of(loop).add(self)
        return self

    def passed(self, now: float) -> bool:
        """The loop saw the deadline pass at ``now``: True when it is moved on, False when it
        expired (the task is cancelled)."""
        late = now - self.at
        if now < self.latest and (late > LOOP_LATE_S or not self.graced):
            self.at, self.graced = now + max(late, GRACE_S), True
            return True
        self.expired = True
        self.task.cancel()
        return False

    async def __aexit__(self, kind, exc, tb) -> None:
        task, self.task = self.task, None  # done: nothing to cancel any more (and the task is not kept)
        if self.expired and kind is asyncio.CancelledError and task.uncancel() == 0:
            raise TimeoutError from exc


class _Deadlines:
    """Every deadline of one event loop in a heap, with one loop timer at the earliest: a timer
    handle per attempt cost more than the rest of the deadline. A deadline that ended stays
    in the heap (without its task) until its time comes."""

    _by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines]" = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.heap: list[tuple[float, int, Deadline]] = []
        self.order = itertools.count()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> "_Deadlines":
        if (found := cls._by_loop.get(loop)) is None:
            found = cls._by_loop[loop] = cls(loop)
        return found

    def add(self, deadline: Deadline) -> None:
        heapq.heappush(self.heap, (deadline.at, next(self.order), deadline))
        if deadline.at < self.timer_at:
            self._arm(deadline.at)

    def _arm(self, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_at = self.loop.call_at(at, self._look), at

    def _look(self) -> None:
        self.timer, self.timer_at = None, math.inf
        now = self.loop.time()
        moved = []
        while self.heap and self.heap[0][0] <= now:
            deadline = heapq.heappop(self.heap)[2]
            if deadline.task is not None and deadline.passed(now):
                moved.append(deadline)
        for deadline in moved:
            heapq.heappush(self.heap, (deadline.at, next(self.order), deadline))
        if self.heap:
            self._arm(self.heap[0][0])


async def post(client: http1.Pool, url: str, body: bytes | tuple[bytes, ...], headers: dict[str, str], *,
               allow: tuple[Network, ...], timeout_s: float) -> Response:
    """POST ``body`` (whole, or in pieces sent as one) to ``url``; never raises for what the
    network or the partner does."""
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
