"""Instants as operators type them: ISO 8601 times or durations back from now (``7d``, ``12h``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import click

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|s)\s*$", re.IGNORECASE | re.ASCII)  # ASCII: \d would take ٣ for 3
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> timedelta:
    """``7d``/``12h``/``30m``/``2w``/``45s``; ``ValueError`` saying what was expected."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (90d, 12h, 30m, 2w)")
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """``7d``/``12h``/``30m``/``2w``/``45s`` before ``now``, or an ISO 8601 time (UTC when no offset).

    Raises ``ValueError`` saying what was expected.
    """
    now = now or datetime.now(timezone.utc)
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time (2026-11-20T08:00:00Z) "
                         f"nor a duration back from now (7d, 12h, 30m)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Instant(click.ParamType):
    """A click parameter for :func:`parse_instant`: every command's time option (``--since``,
    ``--until``) is one, so a bad value is the same usage error (exit 2) everywhere.
    ``keep_text``: check the value but keep it as typed (a resumed replay finds its checkpoint by it)."""

    name = "TIME"

    def __init__(self, *, keep_text: bool = False):
        self.keep_text = keep_text

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            moment = parse_instant(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return value if self.keep_text else moment
