"""Many rows in one SQLite statement.

:mod:`sqlite3` lets the GIL go around each row's step of an ``executemany``, and beside a
thread running Python each step then waits up to a switch interval (5 ms) to take it back:
2,000 rows took 4 ms alone and 2.8-4.3 s beside a busy thread, row by row, and 36-56 ms as
one statement. So the writers that share a process with busy threads (the pusher's Kafka side
and receipts beside its sending loop, the archive's writer beside its consume loop) send many
rows as one JSON array that one statement reads (``json_each``). Rows JSON cannot carry (bytes,
a text with a NUL) go as one ``INSERT … VALUES (…), (…), …`` per :data:`VALUES_ROWS` rows:
2,000 rows of 3 KB blobs took 11 s beside a busy thread row by row, 90 ms so.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from typing import Iterable

import orjson

_QUOTED = re.compile(r"('[^']*')")
_INSERT = re.compile(r"\s*(INSERT\s+(?:OR\s+\w+\s+)?INTO\s+\w+\s*(?:\([^()]*\))?)\s*VALUES\s*\(([^()]*)\)(.*)",
                     re.S | re.I)
#: rows in one multi-row ``VALUES`` statement at most (fewer when the connection's limit of
#: parameters says so)
VALUES_ROWS = 500
_UPDATE = re.compile(r"\s*(UPDATE\s+\w+\s+SET\s.*?)\s(WHERE\s.*)", re.S | re.I)


@functools.lru_cache(maxsize=128)
def over_json(sql: str, keyed: bool = False) -> str | None:
    """``sql``, a statement with ``?`` placeholders run once per row, as one SQLite statement
    over its rows given as one JSON array of arrays (``json_each``), or None when it is not an
    ``INSERT … VALUES (…)`` (nor, with ``keyed``, an ``UPDATE … SET … WHERE``).

    ``INSERT INTO t (a, b) VALUES (?, 'x')`` → ``INSERT INTO t (a, b) SELECT value->>0, 'x'
    FROM json_each(?) WHERE true``; an UPDATE names the row's values ``v.c0``, ``v.c1``, … in a
    ``WITH v AS (…) UPDATE … FROM v WHERE …``."""
    if ":" in _QUOTED.sub("", sql):  # named parameters
        return None
    numbered = 0

    def number(text: str, as_column: bool) -> str:
        nonlocal numbered
        parts = _QUOTED.split(text)
        for i in range(0, len(parts), 2):  # outside quotes
            pieces = parts[i].split("?")
            parts[i] = pieces[0]
            for piece in pieces[1:]:
                parts[i] += (f"v.c{numbered}" if as_column else f"value->>{numbered}") + piece
                numbered += 1
        return "".join(parts)

    if insert := _INSERT.fullmatch(sql):
        head, values, tail = insert.groups()
        return f"{head} SELECT {number(values, False)} FROM json_each(?) WHERE true{number(tail, False)}"
    if keyed and (update := _UPDATE.fullmatch(sql)):
        head, where = number(update[1], True), number(update[2], True)
        columns = ", ".join(f"value->>{i} AS c{i}" for i in range(numbered))
        return f"WITH v AS (SELECT {columns} FROM json_each(?)) {head} FROM v {where}"
    return None


@functools.lru_cache(maxsize=128)
def many_values(sql: str, count: int) -> str | None:
    """``sql``, an ``INSERT … VALUES (…)`` whose placeholders all stand in its one row of values,
    with ``count`` rows of values, or None when it is not such a statement."""
    insert = _INSERT.fullmatch(sql)
    if insert is None or "?" in _QUOTED.sub("", insert[3]) or ":" in _QUOTED.sub("", sql):
        return None
    head, values, tail = insert.groups()
    return f"{head} VALUES {', '.join([f'({values})'] * count)}{tail}"


def executemany(conn: sqlite3.Connection, sql: str, rows: Iterable, *, keyed: bool = False) -> None:
    """``conn.executemany(sql, rows)``, as one statement over a JSON array (:func:`over_json`)
    when it is an ``INSERT … VALUES (…)`` of more than one row, or with ``keyed`` (the caller's
    word that no two of its rows pick the same row: each target row takes one) an ``UPDATE …
    WHERE``. Rows of an INSERT that JSON or SQLite's ``->>`` cannot carry (bytes, a text with a
    NUL) go as multi-row ``VALUES`` (:func:`many_values`); those of an UPDATE, row by row. JSON
    has no infinity: ``inf`` would be written as NULL (no caller writes one)."""
    rows = rows if isinstance(rows, list) else list(rows)
    if len(rows) > 1 and (statement := over_json(sql, keyed)) is not None:
        try:
            data = orjson.dumps(rows).decode()
        except TypeError:  # bytes
            data = None
        if data is not None and "\\u0000" not in data:  # SQLite's ->> ends a text at a NUL
            conn.execute(statement, (data,))
            return
    if len(rows) > 1 and many_values(sql, 1) is not None:
        width = len(rows[0]) or 1
        step = max(1, min(VALUES_ROWS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            conn.execute(many_values(sql, len(part)), [value for row in part for value in row])
        return
    conn.executemany(sql, rows)
