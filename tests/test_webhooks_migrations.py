"""The webhook state upgrades in place, in both stores: a SQLite file of the first release, a
state at the schema of the release before bodies and Retry-After pauses (version 2) and one at
the schema of the release before PostgreSQL and leases (version 4), each with data in it, open
under the current schema with nothing lost; a state newer than the code is refused."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from newswire.config import Settings
from newswire.consumers.webhooks import dialect, ordering, outbox, partners, pull, receipts, signing, store
from tests.conftest import STORES

#: partners.disabled_at; a payload per delivery, no bodies table, no paused_until
BEFORE_BODIES = 2
#: bodies, paused_until, outbox_changed_at; no pushers / partner_leases
BEFORE_LEASES = 4
#: partner_tokens and partner_audit; no partners.mode / ordering / strict_skipped, deliveries.pulled_at, attempts.via
BEFORE_CURSOR = 6
#: deliveries.revision (resend while in flight), partners.failing / last_failure_at (runs of failures)
BEFORE_REVISION = 9


@pytest.fixture(params=STORES)
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    settings = replace(Settings.from_env(), home=tmp_path)
    if request.param == "postgresql":
        settings = replace(settings, state_url=request.getfixturevalue("postgres_server").new_database())
    return settings


def _raw(settings: Settings) -> dialect.Db:
    """A connection that does not migrate."""
    if settings.state_url:
        return dialect.connect_postgres(settings.state_url)
    return dialect.connect_sqlite(str(store.path_of(settings)), synchronous="FULL")


def _with_data(db: dialect.Db, *, disabled_at: bool) -> None:
    """A partner, disabled, with a delivered delivery and its event and attempt."""
    now = time.time()
    columns = ", disabled_at" if disabled_at else ""
    db.execute("INSERT INTO partners (id, name, url, format, filters, concurrency, rate_limit, enabled,"
               f" disabled_reason, secrets, allow_cidrs, next_seq, created_at, updated_at{columns}) VALUES"
               " ('acme', 'Acme', 'https://acme.example/hook', 'ninjs', '{}', 1, 0, 0, 'gone (410)',"
               f" ?, '[]', 2, ?, ?{', ?' if disabled_at else ''})",
               (json.dumps([signing.new_secret()]), now, now, *((now,) if disabled_at else ())))
    db.execute("INSERT INTO events (event_id, article_id, version, event_type, avro) VALUES"
               " ('e1', 'a1', 1, 'published', ?)", (b"\x00avro\xff",))
    db.execute("INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq, content_type,"
               " payload, status, next_attempt_at, created_at) VALUES"
               " ('acme', 'e1', 'a1', 1, 'published', 1, 'application/json', ?, 'delivered', ?, ?)",
               (b"{}", now, now))
    db.execute("INSERT INTO attempts (delivery_id, partner_id, event_id, article_id, version, seq, attempt, at,"
               " status_code, duration_ms, outcome) VALUES (1, 'acme', 'e1', 'a1', 1, 1, 1, ?, 200, 12.5,"
               " 'delivered')", (now,))


def _assert_kept(db: dialect.Db) -> None:
    partner = partners.get(db, "acme")
    assert not partner.enabled and partner.disabled_reason == "gone (410)"
    assert [tuple(r) for r in db.execute("SELECT partner_id, seq, status FROM deliveries")] == [("acme", 1, "delivered")]
    assert bytes(db.execute("SELECT avro FROM events").fetchone()[0]) == b"\x00avro\xff"
    assert db.execute("SELECT outcome, duration_ms FROM attempts").fetchone()[:] == ("delivered", 12.5)
    assert db.execute("SELECT next_seq FROM partners").fetchone()[0] == 2
    assert outbox.payload(db, 1) == b"{}"  # step 4: its body, as it was sent, kept whole
    # what the upgrade added works: a delivery queued after it gets new ids (step 4 copied the
    # old ones; PostgreSQL's identity columns move past them), the pause of step 3, the leases of step 5
    queued = outbox.enqueue(db, [outbox.Queued("acme", "e2", "a1", 2, "updated", "application/json", time.time(),
                                               (b'{"seq": ', b"}"))], {"e2": ("a1", 2, "updated", b"avro")})
    assert queued[0].seq == 2
    pending = outbox.pending_after(db, 0, limit=10)
    assert [(d.id, d.seq) for d in pending] == [(2, 2)] and outbox.payload(db, 2) == b'{"seq": 2}'
    partners.note_attempts(db, [("acme", "throttled", 100.0, 123.0)])
    assert partners.get(db, "acme").paused_until == 123.0
    db.execute("INSERT INTO partner_leases (partner_id, owner, expires_at) VALUES ('acme', '', 0)")
    assert db.execute("SELECT count(*) FROM pushers").fetchone()[0] == 0


def test_a_first_release_state_file_is_upgraded_in_place_with_its_data(tmp_path: Path) -> None:
    settings = replace(Settings.from_env(), home=tmp_path)
    raw = sqlite3.connect(store.path_of(settings))  # as the first release made it: no user_version
    raw.executescript(store.MIGRATIONS[0])
    raw.close()
    db = _raw(settings)
    _with_data(db, disabled_at=False)
    db.close()

    db = store.connect(settings)

    assert store.schema_version(db) == store.VERSION
    _assert_kept(db)
    assert partners.get(db, "acme").disabled_at is None  # added by step 2, unknown for a partner disabled before it
    db.close()


def test_a_state_before_bodies_is_upgraded_in_place_with_its_data(state: Settings) -> None:
    db = _raw(state)
    store.migrate(db, to=BEFORE_BODIES)
    _with_data(db, disabled_at=True)
    assert store.schema_version(db) == BEFORE_BODIES
    db.close()

    db = store.connect(state)

    assert store.schema_version(db) == store.VERSION
    _assert_kept(db)
    assert partners.get(db, "acme").disabled_at is not None
    _no_dangling_rows(db)
    db.close()
    again = store.connect(state)  # a second open runs no step twice
    assert store.schema_version(again) == store.VERSION
    again.close()


def _partner_with_a_body(db: dialect.Db, *, concurrency: int, next_seq: int, head: bytes, **columns) -> int:
    """Partner acme (enabled, with ``columns`` its schema has), event e1 and a body of it; the body's id."""
    now = time.time()
    names = "".join(f", {name}" for name in columns)
    db.execute("INSERT INTO partners (id, name, url, format, filters, concurrency, rate_limit, enabled, secrets,"
               f" allow_cidrs, next_seq, created_at, updated_at{names}) VALUES ('acme', 'Acme',"
               f" 'https://acme.example/hook', 'ninjs', '{{}}', ?, 0, 1, ?, '[]', ?, ?, ?{', ?' * len(columns)})",
               (concurrency, json.dumps([signing.new_secret()]), next_seq, now, now, *columns.values()))
    db.execute("INSERT INTO events (event_id, article_id, version, event_type, avro) VALUES"
               " ('e1', 'a1', 1, 'published', ?)", (b"avro",))
    return db.execute("INSERT INTO bodies (event_id, head, tail) VALUES ('e1', ?, ?) RETURNING id",
                      (head, b"}")).fetchone()[0]


def test_a_state_before_leases_is_upgraded_in_place_with_its_data(state: Settings) -> None:
    db = _raw(state)
    store.migrate(db, to=BEFORE_LEASES)
    now = time.time()
    body = _partner_with_a_body(db, concurrency=1, next_seq=3, head=b'{"seq": ', paused_until=now + 60)
    db.executemany("INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq,"
                   " content_type, body_id, status, next_attempt_at, created_at) VALUES"
                   " ('acme', 'e1', 'a1', 1, 'published', ?, 'application/json', ?, ?, ?, ?)",
                   [(1, body, "delivered", now, now), (2, body, "pending", now, now)])
    db.close()

    db = store.connect(state)

    assert store.schema_version(db) == store.VERSION
    assert partners.get(db, "acme").paused_until == pytest.approx(now + 60)
    assert [(d.seq, outbox.payload(db, d.id)) for d in outbox.pending_after(db, 0, limit=10)] == [(2, b'{"seq": 2}')]
    assert partners.claim_seqs(db, ["acme"]).numbers == {"acme": 3}
    db.execute("INSERT INTO partner_leases (partner_id, owner, expires_at) VALUES ('acme', '', 0)")
    db.close()


def test_a_state_before_pull_and_strict_order_is_upgraded_in_place_with_its_data(state: Settings) -> None:
    db = _raw(state)
    store.migrate(db, to=BEFORE_CURSOR)
    now = time.time()
    body = _partner_with_a_body(db, concurrency=4, next_seq=4, head=b'{"sequence":')
    db.executemany("INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq,"
                   " content_type, body_id, status, tries, next_attempt_at, created_at, last_error) VALUES"
                   " ('acme', 'e1', 'a1', 1, 'published', ?, 'application/json', ?, ?, ?, ?, ?, ?)",
                   [(1, body, "delivered", 1, now, now, None), (2, body, "pending", 0, now, now, None),
                    (3, body, "dead", 8, now, now, "HTTP 500")])
    db.execute("INSERT INTO attempts (delivery_id, partner_id, event_id, article_id, version, seq, attempt, at,"
               " status_code, duration_ms, outcome) VALUES (1, 'acme', 'e1', 'a1', 1, 1, 1, ?, 200, 3.5, 'delivered')",
               (now,))
    db.close()

    db = store.connect(state)

    assert store.schema_version(db) == store.VERSION
    partner = partners.get(db, "acme")
    assert (partner.mode, partner.ordering, partner.concurrency) == ("push", "article", 4)  # as before the upgrade
    assert [tuple(r) for r in db.execute("SELECT seq, via FROM attempts")] == [(1, "push")]
    assert pull.first_unacknowledged(db, "acme") == 2
    assert [r[0] for r in db.execute("SELECT revision FROM deliveries")] == [0, 0, 0]  # step 10: none resent yet
    assert ordering.held_reason(db, partner) is None  # not strict
    strict = partners.update(db, "acme", ordering="strict")
    assert "seq 3 is dead (HTTP 500)" in ordering.held_reason(db, strict)
    partners.update(db, "acme", mode="pull")
    page = pull.changes(db, "acme", after=None, limit=10)  # the cursor goes on from the first not delivered
    assert [(c.seq, c.body) for c in page.changes] == [(2, b'{"sequence":2}'), (3, b'{"sequence":3}')]
    assert pull.changes(db, "acme", after=3, limit=10).acknowledged == [2, 3]
    assert [tuple(r) for r in db.execute("SELECT seq, via FROM attempts ORDER BY id")] == [
        (1, "push"), (2, "pull"), (3, "pull")]
    db.close()


def test_a_state_before_revisions_and_failure_runs_is_upgraded_with_runs_counted_from_its_receipts(
        state: Settings) -> None:
    db = _raw(state)
    store.migrate(db, to=BEFORE_REVISION)
    body = _partner_with_a_body(db, concurrency=1, next_seq=2, head=b'{"sequence":')
    db.execute("INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq, content_type,"
               " body_id, status, tries, next_attempt_at, created_at) VALUES"
               " ('acme', 'e1', 'a1', 1, 'published', 1, 'application/json', ?, 'pending', 4, 0, 0)", (body,))
    # failed, answered, then failed twice and was throttled once: a run of two, the last at 50
    db.executemany("INSERT INTO attempts (delivery_id, partner_id, event_id, article_id, version, seq, attempt, at,"
                   " status_code, duration_ms, outcome) VALUES (1, 'acme', 'e1', 'a1', 1, 1, ?, ?, ?, 1.0, ?)",
                   [(1, 10.0, 500, "retry"), (2, 20.0, 410, "gone"), (3, 30.0, 500, "retry"),
                    (4, 40.0, 429, "throttled"), (5, 50.0, None, "retry")])
    db.close()

    db = store.connect(state)

    assert store.schema_version(db) == store.VERSION
    assert receipts.failing(db, "acme") == receipts.Failing(2, 50.0)
    assert [r[0] for r in db.execute("SELECT revision FROM deliveries")] == [0]
    partners.note_attempts(db, [("acme", "retry", 60.0, None), ("acme", "throttled", 61.0, 90.0)])
    assert receipts.failing(db, "acme") == receipts.Failing(3, 60.0) and partners.get(db, "acme").paused_until == 90
    # within one batch, an answer ends the run and a failure after it starts the next
    partners.note_attempts(db, [("acme", "retry", 72.0, None), ("acme", "delivered", 71.0, None)])
    assert receipts.failing(db, "acme") == receipts.Failing(1, 72.0)
    partners.note_attempts(db, [("acme", "delivered", 80.0, None)])
    assert receipts.failing(db, "acme") is None
    assert tuple(db.execute("SELECT failing, last_failure_at, paused_until FROM partners").fetchone()) == (0, None, 90)
    db.close()


def _no_dangling_rows(db: dialect.Db) -> None:
    """Every delivery has its body (what SQLite's foreign_key_check would say, in both stores)."""
    assert db.execute("SELECT count(*) FROM deliveries d LEFT JOIN bodies b ON b.id = d.body_id"
                      " WHERE b.id IS NULL").fetchone()[0] == 0


def test_a_new_state_has_the_current_schema(state: Settings) -> None:
    db = store.connect(state)
    assert store.schema_version(db) == store.VERSION
    db.execute("INSERT INTO pushers (id, host, pid, seen_at) VALUES ('p', 'h', 1, 1.5)")
    assert db.execute("SELECT disabled_at FROM partners").fetchall() == []
    db.close()


def test_processes_opening_a_new_state_at_once_create_it_once(state: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda _: _version_after_connect(state), range(4)))
    assert versions == [store.VERSION] * 4


def _version_after_connect(settings: Settings) -> int:
    db = store.connect(settings)
    try:
        return store.schema_version(db)
    finally:
        db.close()


def test_a_state_newer_than_the_code_is_refused_untouched(state: Settings) -> None:
    store.connect(state).close()
    raw = _raw(state)
    store.set_version(raw, store.VERSION + 1)
    raw.close()

    with pytest.raises(store.StateTooNew, match=f"version {store.VERSION + 1}, newer than this newswire's"):
        store.connect(state)
    raw = _raw(state)
    assert store.schema_version(raw) == store.VERSION + 1
    raw.close()


def test_an_unreachable_postgresql_state_is_one_clear_error(tmp_path: Path) -> None:
    from newswire.broker import free_port
    settings = replace(Settings.from_env(), home=tmp_path,
                       state_url=f"postgresql://newswire:secret@127.0.0.1:{free_port()}/newswire")
    with pytest.raises(store.StateUnavailable, match=r"postgresql://newswire:\*\*\*@127\.0\.0\.1:\d+/newswire: "
                                                     r"cannot connect"):
        store.connect(settings)


def test_a_lost_postgresql_connection_is_an_io_error_not_a_bad_event(postgres_server, tmp_path: Path) -> None:
    """The consume loop stops on an OSError (and reads the batch again after a restart); any
    other error from a handler would dead-letter the event it was handling."""
    settings = replace(Settings.from_env(), home=tmp_path, state_url=postgres_server.new_database())
    db = store.connect(settings)
    backend = db.execute("SELECT pg_backend_pid()").fetchone()[0]
    killer = _raw(settings)
    killer.execute("SELECT pg_terminate_backend(?)", (backend,))
    killer.close()
    with pytest.raises(dialect.StateAway) as caught:
        db.execute("SELECT count(*) FROM deliveries")
    assert isinstance(caught.value, OSError) and "webhook state" in str(caught.value)
