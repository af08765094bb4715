"""Many rows in one SQLite statement (:mod:`newswire.sqlite_rows`), as the webhook state's
:class:`~newswire.consumers.webhooks.dialect.Db` and the archive index write them, write what
row-by-row writes."""

from __future__ import annotations

import sqlite3

import pytest

from newswire.consumers.webhooks.dialect import Db
from newswire.sqlite_rows import VALUES_ROWS, many_values, over_json

SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, at REAL, n INTEGER, flag INTEGER, state TEXT)"
INSERT = "INSERT INTO t (id, name, at, n, flag, state) VALUES (?, ?, ?, ?, ?, 'new') ON CONFLICT DO NOTHING"
UPDATE = "UPDATE t SET n = n + ?, at = coalesce(?, at), state = CASE WHEN ? THEN 'done' ELSE state END WHERE id = ?"

ROWS = [
    (1, "plain", 1764758400.123456, 0, True),
    (2, "quote ' and ? and \\ and \"", 0.1, -(2 ** 62), False),
    (3, None, None, None, None),
    (4, "نص عربي \u202e", 1e-300, 2 ** 62, 1),
    (1, "a second row with key 1: ON CONFLICT keeps the first", 9.0, 9, True),
]
UPDATES = [(5, 1764758401.5, True, 1), (-1, None, False, 2), (7, 2.25, 1, 4), (1, 3.0, True, 99)]


def _db(path, statements: list[str] | None = None) -> Db:
    conn = sqlite3.connect(path, isolation_level=None)
    if statements is not None:
        conn.set_trace_callback(statements.append)
    db = Db(conn)
    db.execute(SCHEMA)
    return db


def _contents(db: Db) -> list[tuple]:
    return [tuple(r) for r in db.execute(
        "SELECT id, name, typeof(name), at, typeof(at), n, typeof(n), flag, typeof(flag), state FROM t ORDER BY id")]


def test_statements_over_a_json_array():
    assert over_json(INSERT) == ("INSERT INTO t (id, name, at, n, flag, state) SELECT value->>0, value->>1, value->>2,"
                                 " value->>3, value->>4, 'new' FROM json_each(?) WHERE true ON CONFLICT DO NOTHING")
    assert over_json("UPDATE t SET n = ? WHERE id = ?", keyed=True) == (
        "WITH v AS (SELECT value->>0 AS c0, value->>1 AS c1 FROM json_each(?)) UPDATE t SET n = v.c0 FROM v"
        " WHERE id = v.c1")
    assert over_json("UPDATE t SET n = ? WHERE id = ?") is None  # two rows may pick one: row by row
    assert over_json("INSERT INTO t (id) VALUES (:id)") is None
    assert over_json("DELETE FROM t WHERE id = ?", keyed=True) is None
    assert over_json("INSERT INTO t (name) VALUES ('?')") == "INSERT INTO t (name) SELECT '?' FROM json_each(?) WHERE true"


@pytest.mark.parametrize("keyed", [True, False])
@pytest.mark.parametrize("nul", [False, True])
def test_one_statement_writes_what_row_by_row_writes(tmp_path, keyed, nul):
    rows = ROWS + [(5, "a NUL \u0000 then more", 1.0, 1, 0)] if nul else ROWS
    statements: list[str] = []
    by_row, at_once = _db(tmp_path / "a.db"), _db(tmp_path / "b.db", statements)
    for row in rows:
        by_row.execute(INSERT, row)
    for update in UPDATES:
        by_row.execute(UPDATE, update)
    at_once.executemany(INSERT, rows)
    at_once.executemany(UPDATE, UPDATES, keyed=keyed)
    assert _contents(at_once) == _contents(by_row)
    first = _contents(at_once)[0]
    assert first[:3] == (1, "plain", "text") and first[3] == 1764758401.5 and first[5:] == (
        5, "integer", 1, "integer", "done")
    over_one = [s for s in statements if "json_each" in s]
    # a text with a NUL goes row by row (SQLite's ->> would cut it); the UPDATE only when keyed
    assert len(over_one) == (0 if nul else 1) + int(keyed)


def test_rows_json_cannot_carry_go_as_multi_row_values(tmp_path):
    statements: list[str] = []
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    conn.set_trace_callback(statements.append)
    db = Db(conn)
    db.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, head BLOB, kind TEXT)")
    count = VALUES_ROWS * 2 + 7  # three statements, the last one shorter
    rows = [(i, bytes([i % 256, 0, 255]) * (i % 5), f"n\u0000{i}") for i in range(count)] + [(3, b"second", "x")]
    statements.clear()
    db.executemany("INSERT INTO b (id, head, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", rows)
    assert len(statements) == 3 and statements[0].count("), (") == VALUES_ROWS - 1
    stored = [tuple(r) for r in db.execute("SELECT id, head, typeof(head), kind FROM b ORDER BY id")]
    assert stored == [(i, bytes([i % 256, 0, 255]) * (i % 5), "blob", f"n\u0000{i}") for i in range(count)]


def test_multi_row_values_only_where_every_placeholder_is_in_the_row():
    assert many_values("INSERT INTO b (id, head) VALUES (?, 'x') ON CONFLICT DO NOTHING", 2) == (
        "INSERT INTO b (id, head) VALUES (?, 'x'), (?, 'x') ON CONFLICT DO NOTHING")
    assert many_values("INSERT INTO b (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = n + ?", 2) is None
    assert many_values("INSERT INTO b (id) VALUES (:id)", 2) is None
    assert many_values("UPDATE b SET head = ? WHERE id = ?", 2) is None
