"""What listing and status commands print: rows, as a text table or as JSON lines.

Every such command takes ``--json`` (:data:`json_option`) and prints its rows with :func:`emit`:
by default a header line of column names and one tab-separated line per row (``-`` for no
value, lists joined with commas, mappings as ``key=value`` pairs); with ``--json``, one JSON
object per row and line, whose keys are the header's column names (times ISO 8601 UTC, no
value ``null``). A closing count or verdict line (:func:`summary`) goes to stdout after a
table and to stderr with ``--json``, so that stdout is only rows. Fields: README, *Output for
scripts*.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from typing import Any, Iterable, Mapping, Sequence

import click

Row = Mapping[str, Any]

json_option = click.option("--json", "as_json", is_flag=True,
                           help="One JSON object a line, keyed by the column names (README: Output for scripts).")


def iso(epoch_s: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC to the second (``2026-11-26T09:00:00Z``); None stays None."""
    return None if epoch_s is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def cell(value: Any) -> str:
    """One value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def as_json_line(row: Row) -> str:
    return json.dumps(dict(row), default=_json_value, ensure_ascii=False)


def emit(rows: Iterable[Row], columns: Sequence[str], as_json: bool) -> int:
    """Print ``rows`` (each with at least ``columns``) as a table or JSON lines; return how many."""
    if not as_json:
        click.echo("\t".join(columns))
    count = 0
    for row in rows:
        picked = {c: row[c] for c in columns}
        click.echo(as_json_line(picked) if as_json else "\t".join(map(cell, picked.values())))
        count += 1
    return count


def summary(text: str, as_json: bool) -> None:
    """A closing line: on stdout under a table, on stderr beside JSON lines."""
    click.echo(text, err=as_json)
