"""A look-up of many ids as a few ``… IN (?, ?, …)`` queries of at most :data:`CHUNK` ids each.

Both stores cap the parameters of one statement (SQLite's ``SQLITE_MAX_VARIABLE_NUMBER``,
PostgreSQL's 65,535), so a look-up of an unbounded list of ids goes in chunks. The statement is
written once with :data:`IDS` where the ids' placeholders go, and run through any ``execute``
that takes ``?`` placeholders (:meth:`sqlite3.Connection.execute`, the webhook state's
:meth:`.consumers.webhooks.dialect.Db.execute`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

#: ids in one ``IN (...)``, unless the caller says otherwise
CHUNK = 500
#: where :func:`select_in` puts a chunk's placeholders: ``… WHERE id IN (...)``
IDS = "(...)"


def select_in(execute: Callable[[str, tuple[Any, ...]], Iterable[Any]], sql: str, ids: Sequence[Any], *,
              before: Sequence[Any] = (), after: Sequence[Any] = (), chunk: int = CHUNK) -> Iterator[Any]:
    """The rows of ``sql`` (with :data:`IDS` once, where a chunk's ``(?, ?, …)`` goes), run once
    per ``chunk`` of ``ids`` in their order, with parameters ``(*before, *that chunk, *after)``:
    each chunk's rows in the order its query answers them, chunk after chunk. Nothing runs for no
    ids. A generator: each query runs when the rows before it have been read."""
    head, marker, tail = sql.partition(IDS)
    if not marker or IDS in tail:
        raise ValueError(f"select_in: the statement needs {IDS!r} once: {sql!r}")
    for start in range(0, len(ids), chunk):
        part = tuple(ids[start:start + chunk])
        yield from execute(f"{head}({','.join('?' * len(part))}){tail}", (*before, *part, *after))
