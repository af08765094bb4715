"""Many rows in one SQLite statement (:mod:`newswire.sqlite_rows`), as the webhook state's
:class:`~newswire.consumers.webhooks.dialect.Db` and the archive index write them, write what
row-by-row writes."""

from __future__ import annotations

import sqlite3

import pytest

from newswire.consumers.webhooks.dialect import Db
from newswire.sqlite_rows import over_json

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


def test_rows_json_cannot_carry_go_row_by_row(tmp_path):
    db = Db(sqlite3.connect(tmp_path / "c.db", isolation_level=None))
    db.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, head BLOB)")
    db.executemany("INSERT INTO b (id, head) VALUES (?, ?)", [(1, b"\x00\xff"), (2, b"")])
    assert [tuple(r) for r in db.execute("SELECT id, head, typeof(head) FROM b ORDER BY id")] == [
        (1, b"\x00\xff", "blob"), (2, b"", "blob")]
