"""newswire.sqlite_write: SQLite's write lock taken by trying again, not by SQLite's busy handler."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from newswire import sqlite_write


def _connect(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def test_a_writer_gets_the_lock_once_the_holder_commits_and_then_holds_it(tmp_path):
    holder, writer, third = (_connect(tmp_path / "x.db") for _ in range(3))
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    trying = threading.Thread(target=sqlite_write.begin_immediate, args=(writer,))
    trying.start()
    trying.join(0.2)
    assert trying.is_alive()  # still waiting: the holder has not committed
    holder.execute("COMMIT")
    trying.join(30)
    assert not trying.is_alive() and writer.in_transaction
    writer.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sqlite_write.begin_immediate(third, wait_s=0.05)  # the writer holds it now
    writer.execute("COMMIT")
    assert [x for (x,) in third.execute("SELECT x FROM t ORDER BY x")] == [1, 2]


def test_a_writer_gives_up_after_its_wait_and_keeps_its_busy_timeout(tmp_path):
    holder, writer = _connect(tmp_path / "x.db"), _connect(tmp_path / "x.db")
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        sqlite_write.begin_immediate(writer, wait_s=0.1)
    assert not writer.in_transaction
    assert writer.execute("PRAGMA busy_timeout").fetchone() == (100,)
    holder.execute("ROLLBACK")
    sqlite_write.begin_immediate(writer)
    assert writer.in_transaction
    assert writer.execute("PRAGMA busy_timeout").fetchone() == (30_000,)
