"""Step 6 (the partner API's tokens and audit log) upgrades a version-5 state with data in
it, on both stores, keeping everything and adding what works."""

from __future__ import annotations

import json
import time

from newswire.config import Settings
from newswire.consumers.partner_api import audit, tokens
from newswire.consumers.webhooks import outbox, partners, signing, store
from tests.test_webhooks_migrations import _raw, state  # noqa: F401  (the fixture: both stores)

#: pushers and partner leases; no partner tokens, no audit
BEFORE_PARTNER_API = 5


def test_a_version_5_state_gets_tokens_and_an_audit_log_with_its_data_kept(state: Settings) -> None:
    db = _raw(state)
    store.migrate(db, to=BEFORE_PARTNER_API)
    now = time.time()
    db.execute("INSERT INTO partners (id, name, url, format, filters, concurrency, rate_limit, enabled, secrets,"
               " allow_cidrs, next_seq, created_at, updated_at) VALUES ('acme', 'Acme', 'https://acme.example/h',"
               " 'ninjs', '{}', 1, 0, 1, ?, '[]', 2, ?, ?)", (json.dumps([signing.new_secret()]), now, now))
    db.execute("INSERT INTO events (event_id, article_id, version, event_type, avro) VALUES"
               " ('e1', 'a1', 1, 'published', ?)", (b"avro",))
    body = db.execute("INSERT INTO bodies (event_id, head, tail) VALUES ('e1', ?, NULL) RETURNING id",
                      (b"{}",)).fetchone()[0]
    db.execute("INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq, content_type,"
               " body_id, status, next_attempt_at, created_at) VALUES ('acme', 'e1', 'a1', 1, 'published', 1,"
               " 'application/json', ?, 'delivered', ?, ?)", (body, now, now))
    db.execute("INSERT INTO pushers (id, host, pid, seen_at) VALUES ('h:1:x', 'h', 1, ?)", (now,))
    db.close()

    db = store.connect(state)
    try:
        assert store.schema_version(db) >= BEFORE_PARTNER_API + 1
        assert partners.get(db, "acme").name == "Acme"
        assert [tuple(r) for r in db.execute("SELECT seq, status FROM deliveries")] == [(1, "delivered")]
        assert outbox.payload(db, 1) == b"{}"
        assert db.execute("SELECT count(*) FROM pushers").fetchone()[0] == 1
        issued = tokens.issue(db, "acme")
        assert tokens.verify(db, issued.secret).partner_id == "acme"
        audit.record(db, audit.Entry("acme", issued.token.id, "127.0.0.1", "GET /v1/me", 200))
        audit.record(db, audit.Entry(None, None, "127.0.0.1", "GET /v1/me", 401))
        assert [e["status"] for e in audit.read(db, "acme")] == [200]
    finally:
        db.close()
