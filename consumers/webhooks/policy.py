"""When to try again: the retry schedule with jitter, ``Retry-After``, the per-partner circuit
breaker and rate limit. Pure or clock-driven; no I/O."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timezone
from typing import Callable

from newswire import httpdate
from newswire.params import ParamError, parse_int

Clock = Callable[[], float]
#: the largest delay-seconds read from a Retry-After (the pusher caps its waits lower still)
MAX_RETRY_AFTER_S = 10**9


def backoff(schedule: tuple[float, ...], attempts_spent: int, jitter: float,
            rng: random.Random | None = None) -> float | None:
    """Seconds to wait before the next attempt after ``attempts_spent`` attempts, or None when
    the schedule is used up. Each delay is spread by ±``jitter`` (a fraction) so that many
    deliveries that failed together do not all come back in the same instant."""
    if attempts_spent >= len(schedule):
        return None
    delay = schedule[attempts_spent]
    return delay * (1 + (rng or random).uniform(-jitter, jitter))


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(parse_int(value, "Retry-After", low=0, high=MAX_RETRY_AFTER_S))
    except ParamError:
        pass  # not delay-seconds (nor ², ٣ or 5,000 digits): an HTTP-date, or nothing
    when = httpdate.parse(value)
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


class CircuitBreaker:
    """Closed → open after ``failures`` consecutive failures → after ``cooldown_s`` one probe
    (half-open): its success closes the circuit, its failure opens it again."""

    def __init__(self, failures: int, cooldown_s: float, clock: Clock = time.monotonic):
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.probing or self.clock() >= self.opened_at + self.cooldown_s else "open"

    def wait_s(self) -> float:
        """Seconds until a request may go (0 when one may go now)."""
        if self.opened_at is None:
            return 0.0
        if self.probing:
            return self.cooldown_s  # a probe is out; its result decides
        return max(0.0, self.opened_at + self.cooldown_s - self.clock())

    def capacity(self, concurrency: int) -> int:
        """How many requests may be sent now, at most."""
        if self.opened_at is None:
            return concurrency
        return 1 if self.wait_s() == 0 else 0

    def sending(self) -> None:
        if self.opened_at is not None:
            self.probing = True

    def success(self) -> None:
        self.consecutive, self.opened_at, self.probing = 0, None, False

    def inconclusive(self) -> None:
        """A probe that neither succeeded nor failed (throttled, or crashed): probe again later."""
        if self.probing:
            self.opened_at, self.probing = self.clock(), False

    def failure(self) -> bool:
        """Count a failure; True when it (re)opens the circuit."""
        self.consecutive += 1
        if self.probing or (self.opened_at is None and self.consecutive >= self.threshold):
            self.opened_at, self.probing = self.clock(), False
            return True
        return False


class RateLimit:
    """A token bucket: ``rate`` requests per second, bursts of up to ``max(1, rate)``; 0 = unlimited."""

    def __init__(self, rate: float, clock: Clock = time.monotonic):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def wait_s(self) -> float:
        """Take a token if there is one (return 0), else return how long until there is one."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    async def acquire(self) -> None:
        while (wait := self.wait_s()) > 0:
            await asyncio.sleep(wait)
