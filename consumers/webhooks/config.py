"""Settings of the partner pusher, from ``NEWSWIRE_WEBHOOK_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from newswire.timespec import parse_duration

#: Standard Webhooks' schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (seconds
#: to wait before each attempt; its length is the number of attempts).
DEFAULT_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _env(name: str, default: str) -> str:
    return os.environ.get(f"NEWSWIRE_WEBHOOK_{name}", default)


def _number(name: str, default: float, kind: type = float):
    text = _env(name, str(default))
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"NEWSWIRE_WEBHOOK_{name}: {text!r} is not {what}") from None
    if value < 0:
        raise ValueError(f"NEWSWIRE_WEBHOOK_{name}: must be >= 0, got {text!r}")
    return value


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"0,5,300"`` → ``(0.0, 5.0, 300.0)``; each a delay in seconds before that attempt."""
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"NEWSWIRE_WEBHOOK_SCHEDULE: not a comma-separated list of seconds: {text!r}") from exc
    if not delays or any(d < 0 for d in delays):
        raise ValueError(f"NEWSWIRE_WEBHOOK_SCHEDULE: needs one or more delays >= 0: {text!r}")
    return delays


def parse_cidrs(text: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, ::1/128"`` → networks; a clear error names the bad entry."""
    networks = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(f"allowed CIDR {part!r} is not an IP network: {exc}") from exc
    return tuple(networks)


def _keep(text: str) -> float | None:
    if text.strip().lower() == "forever":
        return None
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise ValueError(f"NEWSWIRE_WEBHOOK_KEEP: {exc}, or forever") from None


def _lease(seconds: float) -> float:
    if seconds < 1:
        raise ValueError(f"NEWSWIRE_WEBHOOK_LEASE: must be at least 1 second, got {seconds:g}")
    return seconds


@dataclass(frozen=True)
class WebhookConfig:
    #: delay before each attempt (seconds); len(schedule) attempts in all, then the dead-letter topic
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    #: each delay is multiplied by a random factor in [1 - jitter, 1 + jitter]
    jitter: float = 0.2
    #: total time of one HTTP attempt (connect, send, answer)
    timeout_s: float = 15.0
    #: consecutive failures that open a partner's circuit, and how long it stays open before a probe
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    #: longest ``Retry-After`` honoured (a partner cannot park its deliveries for ever)
    max_retry_after_s: float = 3600.0
    #: networks endpoints may be on although private/loopback (tests, private deployments)
    allow_cidrs: tuple[Network, ...] = field(default_factory=tuple)
    #: Kafka consumer group of the pusher
    group_id: str = "newswire-webhooks"
    #: how often the pusher looks at the state file for work added by other processes (redrive, CLI)
    #: and for partners added or changed
    poll_s: float = 1.0
    #: connections to one host at most (partners on one host name share them)
    host_connections: int = 256
    #: deliveries in flight at once, all partners together
    max_inflight: int = 2048
    #: with this many deliveries in flight (all partners), a partner that already has one in
    #: flight sends another only over a kept-alive connection, opening no second one: a flash
    #: to thousands of partners opens one connection each (opening them was a quarter of its CPU)
    spread_below: int = 256
    #: how long a pusher's claim on a partner lasts without a heartbeat (a shared PostgreSQL
    #: state): a killed pusher's partners go to the others after about this long
    lease_s: float = 10.0
    #: how long what was delivered is kept (deliveries, their bodies and receipts); None: for
    #: ever. What was not delivered, and each partner's newest version and kill of an article,
    #: are kept whatever their age (see :func:`.outbox.prune`)
    keep_s: float | None = 90 * 86400.0
    #: how often each pusher prunes what is older than that
    prune_every_s: float = 3600.0

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    @classmethod
    def from_env(cls) -> "WebhookConfig":
        d = cls()
        return cls(
            schedule=parse_schedule(_env("SCHEDULE", ",".join(f"{s:g}" for s in d.schedule))),
            jitter=_number("JITTER", d.jitter),
            timeout_s=_number("TIMEOUT", d.timeout_s),
            breaker_failures=_number("BREAKER_FAILURES", d.breaker_failures, int),
            breaker_cooldown_s=_number("BREAKER_COOLDOWN", d.breaker_cooldown_s),
            max_retry_after_s=_number("MAX_RETRY_AFTER", d.max_retry_after_s),
            allow_cidrs=parse_cidrs(os.environ.get("NEWSWIRE_WEBHOOK_ALLOW_CIDRS", "")),
            group_id=_env("GROUP", d.group_id),
            poll_s=_number("POLL", d.poll_s),
            host_connections=max(1, _number("HOST_CONNECTIONS", d.host_connections, int)),
            max_inflight=max(1, _number("MAX_INFLIGHT", d.max_inflight, int)),
            spread_below=max(1, _number("SPREAD_BELOW", d.spread_below, int)),
            lease_s=_lease(_number("LEASE", d.lease_s)),
            keep_s=_keep(_env("KEEP", "90d")),
            prune_every_s=_number("PRUNE_EVERY", d.prune_every_s),
        )
