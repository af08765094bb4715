"""Integers from the outside world (query parameters, headers, attributes), parsed strictly.

``str.isdigit()`` is true for ``²`` (which ``int()`` refuses: a 500) and ``int()`` takes ``٣``
as 3 and a 5,000-digit string as a number too large for anything downstream. Here an integer
is 1 to ``len(str(high))`` ASCII digits (no sign, no spaces) within ``low`` .. ``high``; anything
else is a :class:`ParamError` whose message names the parameter.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


class ParamError(ValueError):
    """An integer parameter that is not one (the message names the parameter and the range)."""


def parse_int(raw: str, name: str, *, low: int, high: int) -> int:
    """``raw`` as an integer in ``low`` .. ``high`` (``low`` >= 0); ParamError otherwise."""
    if len(raw) > len(str(high)) or not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise ParamError(f"{name}: must be an integer from {low} to {high} (ASCII digits), not {shown!r}")
    return int(raw)
