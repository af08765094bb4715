"""HTTP dates (RFC 9110 IMF-fixdate and its obsolete forms), as headers carry them."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


def parse(value: str) -> datetime | None:
    """The instant an HTTP date names, in UTC; None when it is not one."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
