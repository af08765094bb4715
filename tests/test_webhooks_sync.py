"""The Kafka side's deliveries are seen by the sender as soon as their transaction commits and
are made durable (the write-ahead log fsynced, :meth:`Db.sync`) before the Kafka offsets are
committed (consumers/webhooks/outbox.py)."""

from __future__ import annotations

import os

import pytest

from newswire.consumers.webhooks import outbox, store
from tests.conftest import on_both_stores


def test_the_kafka_side_commits_without_waiting_for_the_disk_and_syncs_after(settings):
    queueing = outbox.Enqueuer(settings)
    try:
        (synchronous,) = queueing.db.execute("PRAGMA synchronous").fetchone()
        assert synchronous == 1  # NORMAL: the commit does not fsync; commit() syncs before the offsets
        queueing.db.execute("CREATE TABLE probe (n INTEGER)")
        queueing.db.execute("INSERT INTO probe VALUES (7)")
        sender = store.connect(settings, synchronous="NORMAL")
        try:  # seen by another connection before any sync
            assert sender.execute("SELECT n FROM probe").fetchone()[0] == 7
        finally:
            sender.close()
        assert os.path.exists(queueing.db.path + "-wal")  # what sync() fsyncs
        queueing.db.sync()
    finally:
        queueing.close()


@on_both_stores
def test_sync_is_quiet_where_there_is_nothing_to_sync_and_loud_where_the_state_is_gone(settings):
    db = store.connect(settings)
    db.sync()  # PostgreSQL: nothing to do; SQLite: the log of what connect() wrote
    if db.path is not None:
        db.close()
        assert not os.path.exists(db.path + "-wal")  # the last connection closed: the log is folded in
        db.sync()
        os.remove(db.path)
        with pytest.raises(FileNotFoundError):
            db.sync()
    else:
        db.close()
