"""A signing-secret rotation ends by itself: the previous secret signs for a bounded overlap
(24 h unless told), then only the current one does, without anyone ending the rotation; a
real partner verifying with the old secret sees it (the pusher's clock moved on, no
sleeps). On both stores, with the upgrade of a state from before the overlap (migration step
8) keeping a rotation in progress as it was."""

from __future__ import annotations

import json
import random
import time

import pytest
from standardwebhooks import Webhook

from newswire import corpus
from newswire.config import Settings
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.partner_api import service
from newswire.consumers.webhooks import outbox, pull, pusher, signing, store
from tests.conftest import on_each_store
from tests.test_webhooks_migrations import _raw, state  # noqa: F401  (the fixture: both stores)
from tests.test_webhooks_pull import _queue
from tests.webhooks_support import PartnerServer, cli, config, publish, register, wait_for

settings = on_each_store()

#: one cursor per partner, strict order (step 7); no previous_secret_until
BEFORE_OVERLAP = 7


def test_the_old_secret_signs_during_the_overlap_and_not_after_it(settings):
    old = signing.new_secret()
    server = PartnerServer([old]).start()  # the partner still verifies with its old secret only
    register(settings, "rot", server)
    db = store.connect(settings)
    rotated_at = time.time()
    new = registry.rotate_secret(db, "rot", overlap_s=3600, now=rotated_at).secrets[0]
    db.close()
    ahead = [0.0]  # how far the pusher's clock is moved on

    def received(article_id: str):
        wait_for(lambda: any(r.article[0] == article_id for r in server.snapshot()), article_id)
        return next(r for r in server.snapshot() if r.article[0] == article_id)
    try:
        with pusher.Running(settings, config(), clock=lambda: time.time() + ahead[0]):
            publish(settings, [corpus.story(random.Random(1), "during")])
            during = received("during")
            ahead[0] = rotated_at + 3600 - time.time()  # the overlap is up, to the second
            publish(settings, [corpus.story(random.Random(2), "after")])
            after = received("after")
    finally:
        server.stop()
    assert during.verified and len(during.headers["webhook-signature"].split()) == 2
    Webhook(new).verify(during.body, during.headers)
    assert not after.verified and len(after.headers["webhook-signature"].split()) == 1
    Webhook(new).verify(after.body, after.headers)  # nobody ended the rotation: it ended by itself


def test_a_rotation_records_its_end_bounded_and_zero_drops_the_old_secret_at_once(settings):
    server = PartnerServer([signing.new_secret()])
    first = register(settings, "p", server).secrets[0]
    db = store.connect(settings)
    try:
        rotated = registry.rotate_secret(db, "p", now=1000.0)
        assert rotated.secrets[1] == first and rotated.previous_secret_until == 1000.0 + 86400
        assert registry.get(db, "p") == rotated
        assert rotated.signing_secrets(1000.0 + 86399) == rotated.secrets
        assert rotated.signing_secrets(1000.0 + 86400) == rotated.secrets[:1]
        for overlap in (-1, registry.MAX_OVERLAP_S + 1):
            with pytest.raises(ValueError, match="^overlap_s: must be 0 to 604800"):
                registry.rotate_secret(db, "p", overlap_s=overlap)
        at_once = registry.rotate_secret(db, "p", overlap_s=0)
        assert len(at_once.secrets) == 1 and at_once.previous_secret_until is None
        registry.rotate_secret(db, "p", overlap_s=60)
        ended = registry.rotate_secret(db, "p", drop_old=True)
        assert len(ended.secrets) == 1 and ended.previous_secret_until is None
    finally:
        db.close()
    with pytest.raises(ValueError, match="^previous_secret_until: only during a rotation"):
        registry.Partner(id="x", name="X", url=server.url, secrets=(first,), previous_secret_until=1.0)


def test_the_cli_rotates_with_an_overlap_and_shows_until_when_the_old_secret_signs(settings):
    register(settings, "c", PartnerServer([signing.new_secret()]))
    rotated = cli(settings, "partners", "rotate-secret", "c", "--overlap", "7200").output
    assert "both secrets sign until 20" in rotated and "--drop-old` ends it sooner" in rotated
    shown = json.loads(cli(settings, "partners", "show", "c", "--json").output)
    assert shown["previous_secret_until"].startswith("20") and len(shown["secrets"]) == 2
    assert "old secret:    whsec_" in (text := cli(settings, "partners", "show", "c").output)
    assert f"(signs until {shown['previous_secret_until']})" in text
    refused = cli(settings, "partners", "rotate-secret", "c", "--overlap", "1e9", ok=False)
    assert refused.exit_code == 1 and "overlap_s: must be 0 to 604800" in refused.output
    assert "signing with the current secret only" in cli(settings, "partners", "rotate-secret", "c",
                                                         "--overlap", "0").output
    assert "old secret:" not in cli(settings, "partners", "show", "c").output
    db = store.connect(settings)
    try:
        ended = registry.rotate_secret(db, "c", overlap_s=3600, now=time.time() - 7200)  # its hour is over
    finally:
        db.close()
    assert "(no longer signs, since " in cli(settings, "partners", "show", "c").output
    assert ended.previous_secret_until < time.time()


def test_a_state_from_before_the_overlap_keeps_its_rotation_until_it_is_ended(state: Settings) -> None:
    db = _raw(state)
    store.migrate(db, to=BEFORE_OVERLAP)
    now = time.time()
    current, previous = signing.new_secret(), signing.new_secret()
    db.executemany("INSERT INTO partners (id, name, url, format, filters, concurrency, rate_limit, enabled, secrets,"
                   " allow_cidrs, next_seq, created_at, updated_at) VALUES (?, ?, 'https://acme.example/h',"
                   " 'ninjs', '{}', 1, 0, 1, ?, '[]', 2, ?, ?)",
                   [("acme", "Acme", json.dumps([current, previous]), now, now),
                    ("bravo", "Bravo", json.dumps([current]), now, now)])
    _queue(db, "acme", "a1")  # a delivery pending (the outbox writes nothing of step 8)
    db.close()

    db = store.connect(state)
    try:
        assert store.schema_version(db) == store.VERSION
        assert [(d.seq, outbox.payload(db, d.id)) for d in outbox.pending_after(db, 0, limit=10)] == [(2, b'{"sequence":2}')]
        acme = registry.get(db, "acme")
        assert acme.previous_secret_until is None  # no end was set: both sign until the rotation is ended
        assert acme.signing_secrets(now + 10 * 365 * 86400) == (current, previous)
        assert registry.get(db, "bravo").signing_secrets(now) == (current,)
        rotated = registry.rotate_secret(db, "bravo", overlap_s=60, now=now)
        assert registry.get(db, "bravo").previous_secret_until == pytest.approx(now + 60)
        assert rotated.secrets[1] == current
    finally:
        db.close()
    assert "(signs until `newswire partners rotate-secret acme --drop-old`)" in cli(state, "partners", "show",
                                                                                    "acme").output


def test_the_partner_is_shown_what_signs_now():
    old, new = signing.new_secret(), signing.new_secret()
    partner = registry.Partner(id="s", name="S", url="https://s.example/h", secrets=(new, old),
                               previous_secret_until=2000.0)
    assert service.signing_state(partner, 1999.0) == {"signing_secrets": 2, "previous_secret_until": 2000.0}
    assert service.signing_state(partner, 2000.0) == {"signing_secrets": 1, "previous_secret_until": None}
    unbounded = registry.Partner(id="s", name="S", url="https://s.example/h", secrets=(new, old))
    assert service.signing_state(unbounded, 1e12) == {"signing_secrets": 2, "previous_secret_until": None}


def test_a_pull_partner_is_handed_changes_signed_with_the_secrets_valid_then(settings):
    db = store.connect(settings)
    try:
        old = signing.new_secret()
        registry.add(db, registry.Partner(id="puller", name="P", url="", mode="pull", secrets=(old,)))
        rotated_at = time.time()
        new = registry.rotate_secret(db, "puller", overlap_s=60, now=rotated_at).secrets[0]
        for article_id in ("a-1", "a-2"):
            _queue(db, "puller", article_id)
        (during,) = pull.changes(db, "puller", after=None, limit=1, now=rotated_at + 59).changes
        (after,) = pull.changes(db, "puller", after=1, limit=1, now=rotated_at + 60).changes
    finally:
        db.close()
    for secret in (old, new):
        Webhook(secret).verify(during.body, during.headers)
    Webhook(new).verify(after.body, after.headers)
    assert len(after.headers["webhook-signature"].split()) == 1
