"""The partner API on a real port, on both stores, with deliveries made by the real pusher
from events on a real broker: what a partner sees and does, and every way another partner,
a forged or stale token, or hostile input tries to get at what is not theirs."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from newswire import corpus
from newswire.consumers.partner_api import tokens
from newswire.consumers.partner_api.app import create_app
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import pusher, signing, store
from newswire.consumers.webhooks.filters import Subscription
from tests.conftest import on_each_store
from tests.http_server import serving
from tests.partner_api_support import call, issue
from tests.webhooks_support import PartnerServer, cli, config, publish, query, register, wait_for

settings = on_each_store()


@pytest.fixture
def world(settings):
    """acme (refuses its first push once, then takes everything) and bravo, each pushed three
    stories by the real pusher; a token for each."""
    acme = PartnerServer([signing.new_secret()], respond=lambda n, request: 500 if n == 1 else 200).start()
    bravo = PartnerServer([signing.new_secret()]).start()
    register(settings, "acme", acme)
    register(settings, "bravo", bravo)
    stories = [corpus.story(random.Random(i), f"pa-{i}") for i in range(3)]
    publish(settings, stories)
    with pusher.Running(settings, config()):
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] == 6,
                 "three stories delivered to each partner")
    yield settings, acme, bravo, issue(settings, "acme").secret, issue(settings, "bravo").secret
    acme.stop()
    bravo.stop()


@pytest.fixture
def api(world):
    settings = world[0]
    with serving(create_app(settings, webhook_config=config())) as base:
        yield (base, *world)


def test_a_partner_sees_its_deliveries_with_each_answer_paged_by_sequence_number(api):
    base, settings, acme, _, acme_token, _ = api
    me = call(base, "GET", "/v1/me", token=acme_token).json
    assert (me["partner"], me["state"], me["last_seq"], me["delivered"]) == ("acme", "enabled", 3, 3)

    first = call(base, "GET", "/v1/deliveries?limit=2", token=acme_token).json
    assert [d["seq"] for d in first["deliveries"]] == [1, 2] and first["next_after_seq"] == 2
    refused, taken = first["deliveries"][0]["attempts"]
    assert (refused["status"], refused["outcome"]) == (500, "retry") and refused["error"].startswith("HTTP 500")
    assert (taken["status"], taken["outcome"], taken["error"]) == (200, "delivered", None)
    assert taken["duration_ms"] >= 0
    rest = call(base, "GET", "/v1/deliveries?after_seq=2", token=acme_token).json
    assert [d["seq"] for d in rest["deliveries"]] == [3] and rest["next_after_seq"] is None
    one = call(base, "GET", "/v1/deliveries/3", token=acme_token).json
    assert one["article_id"] == rest["deliveries"][0]["article_id"] and "body" not in one and "payload" not in one

    assert call(base, "GET", "/v1/gaps", token=acme_token).json == {"highest_delivered_seq": 3, "below_highest": 0,
                                                                    "gaps": []}
    resent = call(base, "POST", "/v1/resend", token=acme_token, body={"seq": "2-3"})
    assert resent.status == 202 and resent.json == {"resent": [2, 3]}
    gaps = call(base, "GET", "/v1/gaps", token=acme_token).json
    assert [(g["seq"], g["status"]) for g in gaps["gaps"]] == [(2, "pending"), (3, "pending")]
    with pusher.Running(settings, config()):
        wait_for(lambda: len(acme.ok()) == 5, "the two numbers delivered again")
    assert [r.seq for r in acme.ok()][-2:] == [2, 3]


def test_another_partners_token_reaches_nothing_of_acme(api):
    base, settings, acme, _, acme_token, bravo_token = api
    before = query(settings, "SELECT seq, status, tries, next_attempt_at FROM deliveries WHERE partner_id = 'acme'"
                             " ORDER BY seq")
    # the same three stories went to both; bravo sees its own attempts (one 200 each), not acme's 500
    seen = call(base, "GET", "/v1/deliveries", token=bravo_token).json["deliveries"]
    assert [[a["status"] for a in d["attempts"]] for d in seen] == [[200], [200], [200]]
    # no route takes a partner id: one given anyway is ignored, never obeyed
    for path in ("/v1/deliveries?partner=acme", "/v1/deliveries?partner_id=acme", "/v1/me?partner=acme"):
        answer = call(base, "GET", path, token=bravo_token)
        assert "acme" not in answer.text and answer.status == 200
    assert call(base, "GET", "/v1/deliveries/4", token=bravo_token).status == 404
    # bravo resends a range only acme would have: nothing of acme's moves
    call(base, "GET", "/v1/me", token=acme_token)
    wide = call(base, "POST", "/v1/resend", token=bravo_token, body={"seq": "4-9"})
    assert wide.status == 404 and wide.error == {"field": "seq", "problem": "you have no deliveries numbered 4-9"}
    call(base, "POST", "/v1/resend", token=bravo_token, body={"seq": "1-3"})
    call(base, "POST", "/v1/pause", token=bravo_token)
    call(base, "POST", "/v1/signing-secret/rotate", token=bravo_token)
    assert query(settings, "SELECT seq, status, tries, next_attempt_at FROM deliveries WHERE partner_id = 'acme'"
                           " ORDER BY seq") == before
    db = store.connect(settings)
    acme_now = registry.get(db, "acme")
    db.close()
    assert acme_now.enabled and acme_now.secrets == tuple(acme.secrets[:1])
    # bravo's audit log holds bravo's calls only; acme's token cannot be revoked by bravo
    entries = call(base, "GET", "/v1/audit?limit=500", token=bravo_token).json["entries"]
    assert entries and all(e["token_id"].startswith("tok_") for e in entries)
    acme_token_id = call(base, "GET", "/v1/me", token=acme_token).json["token_id"]
    assert acme_token_id not in {e["token_id"] for e in entries}
    assert call(base, "POST", f"/v1/tokens/{acme_token_id}/revoke", token=bravo_token).status == 404
    assert call(base, "GET", "/v1/me", token=acme_token).status == 200
    assert all(t["partner"] == "bravo" for t in call(base, "GET", "/v1/tokens", token=bravo_token).json["tokens"])


def test_forged_expired_revoked_and_misplaced_tokens_are_refused_and_audited(api):
    base, settings, _, _, acme_token, _ = api
    forged = "nwp_" + "A" * 43
    cases = {
        "no header": dict(),
        "forged": dict(token=forged),
        "another shape": dict(token="hunter2"),
        "basic scheme": dict(headers={"Authorization": f"Basic {acme_token}"}),
        "a cookie": dict(headers={"Cookie": f"newswire_partner={acme_token}"}),
    }
    for what, options in cases.items():
        answer = call(base, "GET", "/v1/me", **options)
        assert answer.status == 401, what
        assert answer.error["field"] == "Authorization" and "Bearer" in answer.headers["WWW-Authenticate"]
    for path in (f"/v1/me?token={acme_token}", f"/v1/me?access_token={acme_token}", f"/v1/me?x={acme_token}"):
        answer = call(base, "GET", path)
        assert answer.status == 400 and answer.error["field"] == "query"
    answer = call(base, "GET", f"/v1/me?token={acme_token}", token=acme_token)  # even beside a good header
    assert answer.status == 400

    db = store.connect(settings)
    expired = tokens.issue(db, "acme", expires_at=time.time() + 0.5)
    revoked = tokens.issue(db, "acme")
    db.close()
    assert call(base, "GET", "/v1/me", token=revoked.secret).status == 200
    cli(settings, "partners", "token", "revoke", revoked.token.id)
    wait_for(lambda: time.time() > expired.token.expires_at, "the token's expiry")
    for stale in (expired.secret, revoked.secret):
        assert call(base, "GET", "/v1/me", token=stale).status == 401
    refused = query(settings, "SELECT partner_id, token_id, action, status, remote FROM partner_audit"
                              " WHERE status IN (400, 401)")
    assert len(refused) >= len(cases) + 4 + 2
    assert all(r[0] is None and r[1] is None and r[4] == "127.0.0.1" for r in refused)
    # a token is kept only as its SHA-256
    kept = [bytes(r[0]).decode() if isinstance(r[0], (bytes, memoryview)) else r[0]
            for r in query(settings, "SELECT hash FROM partner_tokens")]
    assert tokens.digest(acme_token) in kept and not any(acme_token in k for k in kept)


def test_hostile_parameters_and_bodies_are_refused_naming_the_field(api):
    base, _, _, _, token, _ = api
    for path, field in (("/v1/deliveries?after_seq=%C2%B2", "after_seq"), ("/v1/deliveries?after_seq=" + "9" * 5000,
                        "after_seq"), ("/v1/deliveries?limit=0", "limit"), ("/v1/deliveries?limit=501", "limit"),
                        ("/v1/deliveries?after_seq=-1", "after_seq"), ("/v1/deliveries/%D9%A3", "seq"),
                        ("/v1/audit?before_id=1e3", "before_id")):
        answer = call(base, "GET", path, token=token)
        assert answer.status == 400 and answer.error["field"] == field, path
    for body, field, status in (({"seq": 5}, "seq", 400), ({"seq": "1-2000"}, "seq", 422),
                                ({"seq": "9-1"}, "seq", 400), ({"from_seq": True}, "from_seq", 422),
                                ({}, "from_seq", 400), ([1, 2], "body", 400)):
        answer = call(base, "POST", "/v1/resend", token=token, body=body)
        assert (answer.status, answer.error["field"]) == (status, field), body
    assert call(base, "POST", "/v1/resend", token=token, data=b"{nope",
                headers={"Content-Type": "application/json"}).error["field"] == "body"
    assert call(base, "POST", "/v1/resend", token=token, data=b"x" * 20000,
                headers={"Content-Type": "application/json"}).status == 413
    for since in ("", "400d", "yesterday", "2999-01-01T00:00Z", 5):
        answer = call(base, "POST", "/v1/backfill", token=token, body={"since": since})
        assert (answer.status, answer.error["field"]) in ((400, "since"), (422, "since")), since
    assert call(base, "POST", "/v1/tokens/rotate", token=token, body={"overlap_s": 10**9}).error["field"] == "overlap_s"


def test_tokens_rotate_with_an_overlap_or_at_once_and_each_token_is_limited(world):
    settings, *_ = world
    with serving(create_app(settings, webhook_config=config(), rate="6/minute")) as base:
        first = issue(settings, "acme").secret
        rotated = call(base, "POST", "/v1/tokens/rotate", token=first, body={"overlap_s": 3600}).json
        second = rotated["token"]
        assert second.startswith("nwp_") and rotated["old_token_id"] != rotated["id"]
        assert call(base, "GET", "/v1/me", token=first).status == 200  # the overlap
        assert call(base, "GET", "/v1/me", token=second).json["token_id"] == rotated["id"]
        third = call(base, "POST", "/v1/tokens/rotate", token=second, body={"overlap_s": 0}).json["token"]
        assert call(base, "GET", "/v1/me", token=second).status == 401
        listed = {t["id"]: t for t in call(base, "GET", "/v1/tokens", token=third).json["tokens"]}
        assert listed[rotated["id"]]["state"] == "revoked" and listed[rotated["old_token_id"]]["state"] == "active"
        # each token has its own budget of 6: third made one call, five more pass, the 7th is refused
        for _ in range(5):
            assert call(base, "GET", "/v1/me", token=third).status == 200
        limited = call(base, "GET", "/v1/me", token=third)
        assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.error["field"] == "token"
        assert call(base, "GET", "/v1/me", token=first).status == 200
    listed = cli(settings, "partners", "token", "list", "--partner", "acme", "--json").output
    assert listed.count('"partner": "acme"') == 4 and "nwp_" in listed and third not in listed


def test_pause_resume_secret_rotation_and_test_event(api):
    base, settings, acme, _, token, _ = api
    assert call(base, "POST", "/v1/pause", token=token).json["state"] == "paused"
    assert query(settings, "SELECT enabled FROM partners WHERE id = 'acme'")[0][0] == 0
    resumed = call(base, "POST", "/v1/resume", token=token).json
    assert resumed["was"] == "paused" and resumed["paused_at"] > 0
    db = store.connect(settings)
    registry.disable(db, "acme", "abuse of the feed")
    db.close()
    refused = call(base, "POST", "/v1/resume", token=token)
    assert refused.status == 409 and "abuse of the feed" in refused.error["problem"]
    assert call(base, "POST", "/v1/pause", token=token).status == 409
    cli(settings, "partners", "enable", "acme")

    assert call(base, "POST", "/v1/signing-secret/rotate", token=token,
                body={"overlap_s": 10**9}).error["field"] == "overlap_s"
    asked_at = time.time()
    new = call(base, "POST", "/v1/signing-secret/rotate", token=token, body={"overlap_s": 7200}).json
    assert new["signing_secrets"] == 2 and new["secret"].startswith("whsec_")
    assert asked_at + 7200 <= new["previous_secret_until"] <= time.time() + 7200
    me = call(base, "GET", "/v1/me", token=token).json
    assert (me["signing_secrets"], me["previous_secret_until"]) == (2, new["previous_secret_until"])
    acme.secrets = [new["secret"], acme.secrets[0]]  # the partner checks each of the two signatures
    sent = call(base, "POST", "/v1/test-event", token=token).json
    assert sent["delivered"] and sent["status"] == 200 and sent["webhook_id"].startswith("test_")
    ping = acme.snapshot()[-1]
    assert ping.verified and ping.envelope["type"] == "newswire.test" and "newswire-sequence" not in ping.headers
    assert len(ping.headers["webhook-signature"].split()) == 2
    assert call(base, "POST", "/v1/signing-secret/end-rotation", token=token).json == {
        "signing_secrets": 1, "previous_secret_until": None}
    acme.secrets = acme.secrets[:1]
    assert call(base, "POST", "/v1/test-event", token=token).json["delivered"]
    assert acme.snapshot()[-1].verified
    entries = call(base, "GET", "/v1/audit", token=token).json["entries"]
    assert [e["action"] for e in entries[:3]] == ["POST /v1/test-event", "POST /v1/signing-secret/end-rotation",
                                                  "POST /v1/test-event"]
    # every call of this test is a row, with its token, address, status and what it changed
    assert [e["action"] for e in reversed(entries)] == [
        "POST /v1/pause", "POST /v1/resume", "POST /v1/resume", "POST /v1/pause", "POST /v1/signing-secret/rotate",
        "POST /v1/signing-secret/rotate", "GET /v1/me", "POST /v1/test-event", "POST /v1/signing-secret/end-rotation",
        "POST /v1/test-event"]
    assert [e["status"] for e in reversed(entries)] == [200, 200, 409, 409, 422, 200, 200, 200, 200, 200]
    assert {(e["token_id"], e["remote"]) for e in entries} == {(entries[0]["token_id"], "127.0.0.1")}
    assert entries[0]["detail"].startswith("test event test_") and "abuse of the feed" in entries[-3]["detail"]
    assert entries[-6]["detail"] == "signing secret rotated: 2 sign, the old one 7200 s"


def test_an_embargoed_story_shows_as_scheduled_and_a_resend_does_not_send_it_early(settings):
    early = PartnerServer([signing.new_secret()]).start()
    register(settings, "late", early, subscription=Subscription(embargoed=False))
    lifts = datetime.now(timezone.utc) + timedelta(hours=2)
    story = {**corpus.story(random.Random(5), "embargoed-1"), "embargo_until": lifts}
    publish(settings, [story])
    with pusher.Running(settings, config()):
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries")[0][0] == 1, "the story queued")
    token = issue(settings, "late").secret
    try:
        with serving(create_app(settings, webhook_config=config())) as base:
            shown = call(base, "GET", "/v1/deliveries", token=token).json["deliveries"]
            assert shown == [{"seq": 1, "status": "scheduled"}]
            assert "embargoed-1" not in call(base, "GET", "/v1/gaps", token=token).text
            assert "embargoed-1" not in call(base, "GET", "/v1/deliveries/1", token=token).text
            assert call(base, "POST", "/v1/resend", token=token, body={"seq": "1"}).status == 202
        (due,) = query(settings, "SELECT next_attempt_at FROM deliveries")[0]
        assert due == pytest.approx(lifts.timestamp(), abs=1)
        assert early.snapshot() == []
    finally:
        early.stop()


def test_a_backfill_counts_first_and_never_sends_a_killed_story(settings):
    """carol joins after three stories, one of them killed since: its dry run counts the two
    live ones, its backfill queues those two and nothing of the killed one."""
    live = [corpus.story(random.Random(40 + i), f"bf-{i}") for i in range(3)]
    publish(settings, [*live, corpus.next_version(live[0], "killed")])
    carol = PartnerServer([signing.new_secret()]).start()
    register(settings, "carol", carol)
    token = issue(settings, "carol").secret
    other = PartnerServer([signing.new_secret()]).start()
    register(settings, "dave", other)
    try:
        with serving(create_app(settings, webhook_config=config())) as base:
            with ThreadPoolExecutor(2) as pool:  # two dry runs at once: one counts, the other is told to wait
                both = list(pool.map(lambda _: call(base, "POST", "/v1/backfill", token=token,
                                                    body={"since": "1h"}), range(2)))
            counted, busy = sorted(both, key=lambda answer: answer.status)
            assert counted.status == 200 and counted.json["dry_run"] and counted.json["would_queue"] == 2
            assert busy.status == 429 and busy.error["field"] == "backfill" and busy.headers["Retry-After"]
            assert query(settings, "SELECT count(*) FROM deliveries")[0][0] == 0
            started = call(base, "POST", "/v1/backfill", token=token, body={"since": "1h", "dry_run": False})
            assert started.status == 202
            wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries")[0][0] == 2, "the backfill queued",
                     timeout_s=60)
            again = call(base, "POST", "/v1/backfill", token=token, body={"since": "1h", "dry_run": False})
            assert again.status in (202, 429)
        queued = query(settings, "SELECT partner_id, article_id FROM deliveries ORDER BY seq")
        assert {a for _, a in queued} == {"bf-1", "bf-2"} and {p for p, _ in queued} == {"carol"}
    finally:
        carol.stop()
        other.stop()


def test_the_operator_issues_lists_and_revokes_tokens(settings):
    partner = PartnerServer([signing.new_secret()])
    register(settings, "acme", partner)
    issued = cli(settings, "partners", "token", "issue", "acme", "--label", "ci", "--expires-days", "30").output
    _, token_word, secret = issued.splitlines()[0].split(": ")
    token_id = token_word.split()[1]
    assert tokens.SHAPE.fullmatch(secret)
    listed = cli(settings, "partners", "token", "list").output
    assert token_id in listed and secret not in listed and "active" in listed
    cli(settings, "partners", "token", "revoke", token_id)
    assert "revoked" in cli(settings, "partners", "token", "list", "--partner", "acme").output
    unknown = cli(settings, "partners", "token", "issue", "nobody", ok=False)
    assert unknown.exit_code == 1 and "nobody" in unknown.output
    unknown = cli(settings, "partners", "token", "list", "--partner", "nobody", ok=False)
    assert unknown.exit_code == 1 and "nobody" in unknown.output
