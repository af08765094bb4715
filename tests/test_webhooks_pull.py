"""The pull transport and one cursor per partner across transports: a pull partner fetches its
deliveries by sequence number (`GET /v1/changes`, real HTTP on 127.0.0.1), signed as a push
would be; asking after N acknowledges what it was handed up to N; a long poll answers as soon
as a delivery is queued; a partner that moves push → pull → push in the middle of a stream of
real Kafka events gets every number, repeats only under the same number and webhook-id."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest
from standardwebhooks import Webhook

from newswire import corpus
from newswire.consumers.webhooks import outbox, pull, pusher, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.partners import Partner
from newswire.consumers.webhooks.signing import new_secret
from tests.conftest import on_each_store
from tests.pull_support import pull_api
from tests.test_partner_guide import python_verify
from tests.webhooks_support import LOOPBACK, PartnerServer, cli, config, publish, query, register, wait_for

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def _pull_partner(settings, partner_id: str = "acme", **fields) -> Partner:
    db = store.connect(settings)
    try:
        return registry.add(db, Partner(id=partner_id, name=partner_id.title(), url="", mode="pull",
                                        secrets=(new_secret(),), **fields))
    finally:
        db.close()


def _push_partner(db) -> Partner:
    return registry.add(db, Partner(id="pushed", name="P", url="http://127.0.0.1:9/hook", secrets=(new_secret(),)),
                        allow=LOOPBACK)


def _stories(count: int, first: int = 1) -> list[dict]:
    return [corpus.story(random.Random(n), f"p-{n}", body_bytes=400) for n in range(first, first + count)]


def _queue(db, partner_id: str, article_id: str, version: int = 1, *, not_before: float | None = None) -> int:
    event_id = f"{article_id}-v{version}"
    row = outbox.Queued(partner_id, event_id, article_id, version, "published" if version == 1 else "updated",
                        "application/json", not_before or time.time(), (b'{"sequence":', b"}"))
    return outbox.enqueue(db, [row], {event_id: (article_id, version, row.event_type, b"avro")})[0].seq


def _unsigned(change: dict) -> dict:
    """A change as handed out, without what signing it at that second put in it."""
    headers = {k: v for k, v in change["headers"].items() if k not in ("webhook-timestamp", "webhook-signature")}
    return {**change, "headers": headers}


def _seqs(page: pull.Page) -> list[int]:
    return [change.seq for change in page.changes]


# --- the store side ---------------------------------------------------------------------------

def test_asking_after_n_acknowledges_only_what_a_pull_handed_out(settings):
    _pull_partner(settings)
    db = store.connect(settings)
    for n in range(1, 4):
        _queue(db, "acme", f"a-{n}")

    first = pull.changes(db, "acme", after=None, limit=2)
    assert _seqs(first) == [1, 2] and first.more
    assert first.changes[0].body == b'{"sequence":1}'
    later = pull.changes(db, "acme", after=3, limit=10)  # 3 was never handed out: not acknowledged

    assert later.acknowledged == [1, 2] and _seqs(later) == [3]
    rows = db.execute("SELECT seq, status FROM deliveries ORDER BY seq").fetchall()
    assert [tuple(r) for r in rows] == [(1, "delivered"), (2, "delivered"), (3, "pending")]
    receipts = db.execute("SELECT seq, outcome, via, status_code FROM attempts ORDER BY seq").fetchall()
    assert [tuple(r) for r in receipts] == [(1, "delivered", "pull", None), (2, "delivered", "pull", None)]
    assert pull.changes(db, "acme", after=2, limit=10).acknowledged == []  # once only
    db.close()


def test_an_attempt_recorded_after_the_partner_acknowledged_by_pull_leaves_it_delivered(settings):
    """A push in flight when the partner switched to pull ends after the pull's acknowledgement."""
    _pull_partner(settings)
    db = store.connect(settings)
    _queue(db, "acme", "a-1")
    in_flight = outbox.pending_after(db, 0, limit=1)[0]  # as the dispatcher holds it
    pull.changes(db, "acme", after=None, limit=10)
    pull.changes(db, "acme", after=1, limit=10)

    outbox.record(db, [(in_flight, outbox.Attempt(status_code=500, duration_ms=5.0, error="HTTP 500",
                                                  outcome="retry", next_attempt_at=time.time() + 5), time.time())])

    assert db.execute("SELECT status FROM deliveries").fetchone()[0] == "delivered"
    assert [tuple(r) for r in db.execute("SELECT outcome, via FROM attempts ORDER BY id")] == [
        ("delivered", "pull"), ("retry", "push")]
    assert pull.changes(db, "acme", after=1, limit=10).changes == []  # not handed out again
    db.close()


def test_an_embargoed_story_waits_for_its_time_and_holds_its_later_versions_but_not_other_stories(settings):
    _pull_partner(settings)
    db = store.connect(settings)
    lifts = time.time() + 3600
    _queue(db, "acme", "early")                        # 1
    _queue(db, "acme", "embargoed", not_before=lifts)  # 2
    _queue(db, "acme", "embargoed", 2)                 # 3: behind its version 1
    _queue(db, "acme", "other")                        # 4

    page = pull.changes(db, "acme", after=None, limit=10)
    assert _seqs(page) == [1, 4]
    assert pull.changes(db, "acme", after=4, limit=10).changes == []
    assert pull.changes(db, "acme", after=4, limit=10).next_due_at == pytest.approx(lifts)
    once_lifted = pull.changes(db, "acme", after=4, limit=10, now=lifts + 1)
    assert _seqs(once_lifted) == [2, 3]  # lower numbers than 4: late arrivals the partner can tell
    db.close()


def test_a_strict_pull_partner_gets_nothing_past_a_delivery_held_back(settings):
    _pull_partner(settings, ordering="strict")
    db = store.connect(settings)
    _queue(db, "acme", "first")
    _queue(db, "acme", "embargoed", not_before=time.time() + 3600)
    _queue(db, "acme", "other")
    assert _seqs(pull.changes(db, "acme", after=None, limit=10)) == [1]
    db.close()


def test_a_push_partner_or_a_disabled_one_cannot_pull(settings):
    db = store.connect(settings)
    _push_partner(db)
    _pull_partner(settings, "held", enabled=False, disabled_reason="contract ended")
    with pytest.raises(pull.NotPulling, match="mode push"):
        pull.changes(db, "pushed", after=None, limit=1)
    with pytest.raises(pull.NotPulling, match="disabled .contract ended"):
        pull.changes(db, "held", after=None, limit=1)
    db.close()


# --- over HTTP ------------------------------------------------------------------------------

def test_a_pull_partner_gets_its_deliveries_signed_as_pushes_and_they_count_once_acknowledged(settings):
    partner = _pull_partner(settings)
    events = _stories(4)
    with pusher.Running(settings, config()), pull_api(settings, "acme") as api:
        publish(settings, events)
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries")[0][0] == 4, "4 deliveries queued")
        got = api.changes(wait=10)["changes"]
        again = api.changes()["changes"]  # handed out again until acknowledged: the same numbers,
        assert [_unsigned(c) for c in again] == [_unsigned(c) for c in got]  # ids and bodies, signed anew
        assert [tuple(r) for r in query(settings, "SELECT DISTINCT status FROM deliveries")] == [("pending",)]
        done = api.changes(after=got[-1]["seq"])

    assert [c["seq"] for c in got] == [1, 2, 3, 4]
    assert sorted(c["event_id"] for c in got) == sorted(str(e["event_id"]) for e in events)
    guide_verify = python_verify()  # the partner guide's own snippet
    for change in got + again:
        Webhook(partner.secrets[0]).verify(change["body"].encode(), change["headers"])
        assert guide_verify(partner.secrets[0], change["headers"], change["body"].encode())
        assert change["headers"]["newswire-sequence"] == str(change["seq"])
        assert f'"sequence":{change["seq"]},' in change["body"]
    assert done["acknowledged"] == 4 and done["changes"] == [] and done["last_seq"] == 4 and not done["more"]
    receipts = query(settings, "SELECT seq, outcome, via FROM attempts ORDER BY seq")
    assert [tuple(r) for r in receipts] == [(n, "delivered", "pull") for n in range(1, 5)]


def test_a_long_poll_answers_within_a_second_of_a_publish(settings):
    _pull_partner(settings)
    stories = _stories(2)
    answers: list[dict] = []
    with pusher.Running(settings, config()), pull_api(settings, "acme") as api:
        publish(settings, stories[:1])  # the pusher's Kafka side is up and consuming once this one is here
        assert [c["seq"] for c in api.changes(wait=30)["changes"]] == [1]
        polling = threading.Thread(target=lambda: answers.append(api.changes(after=1, wait=30)))
        started = time.time()
        polling.start()
        wait_for(lambda: api.waiting() == 1, "the poll waiting")
        publish(settings, stories[1:])
        published = time.time()
        polling.join(35)
        answered = time.time()

    assert answers and [c["seq"] for c in answers[0]["changes"]] == [2] and answers[0]["acknowledged"] == 1
    queued_at = query(settings, "SELECT created_at FROM deliveries WHERE seq = 2")[0][0]
    assert answered - published < 1.0, f"answered {answered - published:.2f} s after the publish"
    assert answered - queued_at < 1.0
    assert published - started < 30  # it was a poll that waited, not one that timed out


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_on_postgresql_a_delivery_committed_after_a_later_numbered_one_wakes_its_long_poll(settings):
    """PostgreSQL's ids come from a sequence, so the writer that took the lower one may commit
    last (two pushers' Kafka sides): its pull partner's waiting poll is woken all the same."""
    for partner_id in ("acme", "other"):
        _pull_partner(settings, partner_id)
    seed, early, later = store.connect(settings), store.connect(settings), store.connect(settings)
    _queue(seed, "other", "b-1")  # its body and event are reused below
    body_id, = seed.execute("SELECT body_id FROM deliveries").fetchone()

    async def scenario() -> pull.Page:
        db = store.AsyncStore(settings)
        watch = pull.Watch(db)
        await watch.start()
        try:
            poll = asyncio.create_task(pull.long_poll(db, watch, "acme", after=None, limit=10, wait_s=30))
            while not watch.waiters:
                await asyncio.sleep(0.01)
            # the early writer takes the lower id and announces acme (as enqueue does), then waits
            early.execute("BEGIN")
            early.execute("INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq,"
                          " content_type, body_id, status, next_attempt_at, created_at) VALUES ('acme', 'b-1-v1',"
                          " 'b-1', 1, 'published', 1, 'application/json', ?, 'pending', 0, 0)", (body_id,))
            early.announce(outbox.PULLS_CHANNEL, ["acme"])
            _queue(later, "other", "b-2")  # a higher id, committed first
            while not watch.mark("other"):  # the watch has seen it (a look by id passes the early one's id)
                await asyncio.sleep(0.01)
            early.execute("COMMIT")
            return await asyncio.wait_for(poll, 15)  # not the poll's 30 s
        finally:
            await watch.close()
            db.close()

    try:
        page = asyncio.run(scenario())
    finally:
        for db in (seed, early, later):
            db.close()
    assert [(c.seq, c.article_id) for c in page.changes] == [(1, "b-1")]
    ids = [tuple(r) for r in query(settings, "SELECT partner_id, id FROM deliveries ORDER BY id")]
    assert [p for p, _ in ids] == ["other", "acme", "other"]  # acme's id is below the one committed first


def test_bad_parameters_are_named_and_a_push_partner_is_told_to_switch(settings):
    _pull_partner(settings)
    db = store.connect(settings)
    _push_partner(db)
    db.close()
    with pull_api(settings, "acme") as api:
        for params, field in (({"after": "-1"}, "after"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                              ({"wait": "31"}, "wait"), ({"wait": "soon"}, "wait"), ({"after": "1e3"}, "after")):
            answer = api.get(**params)
            assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == field, (params, answer.text)
        refused = api.as_partner("pushed").get()
        assert refused.status_code == 409 and "mode pull" in refused.json()["errors"][0]["problem"]
        no_url = api.set_mode(mode="push")
        assert no_url.status_code == 409 and no_url.json()["errors"][0]["field"] == "url"
        assert api.set_mode(mode="sideways").json()["errors"][0]["field"] == "mode"
        assert api.set_mode(ordering="strict").json()["ordering"] == "strict"


def test_moving_push_to_pull_to_push_mid_stream_misses_nothing_and_repeats_only_recognisably(settings):
    """Stories keep coming while the partner switches; some pushes fail first (retries in flight
    at the switches). Every number arrives; a number that arrives twice is the same webhook-id."""
    fails = {3, 7, 12, 18, 26}

    def respond(n, request):
        seq = int(request.headers["newswire-sequence"])
        if seq in fails:
            fails.discard(seq)
            return 500
        return 200

    server = PartnerServer([new_secret()], respond).start()
    register(settings, "acme", server, concurrency=4)
    total = 30
    pulled: list[dict] = []
    try:
        with pusher.Running(settings, config()), pull_api(settings, "acme") as api:
            publish(settings, _stories(10))
            wait_for(lambda: len(server.ok()) >= 4, "some pushes")
            cli(settings, "partners", "update", "acme", "--mode", "pull")  # the operator (or the partner's PUT)
            publish(settings, _stories(10, first=11))
            after, deadline = None, time.monotonic() + 60
            while not set(range(1, 21)) <= {c["seq"] for c in pulled} | {r.seq for r in server.ok()}:
                assert time.monotonic() < deadline, "numbers 1-20 never came"
                page = api.changes(after=after, wait=5)
                pulled += page["changes"]
                after = page["last_seq"]
            publish(settings, _stories(10, first=21))
            assert api.set_mode(mode="push", after=after).json()["mode"] == "push"
            wait_for(lambda: tuple(query(settings, "SELECT count(*), count(CASE WHEN status = 'delivered' THEN 1 END)"
                                                   " FROM deliveries")[0]) == (total, total), "every delivery")
    finally:
        server.stop()

    received: dict[int, set[str]] = {}
    for r in server.ok():
        received.setdefault(r.seq, set()).add(r.webhook_id)
    for change in pulled:
        received.setdefault(change["seq"], set()).add(change["event_id"])
    assert sorted(received) == list(range(1, total + 1))              # nothing missing
    assert all(len(ids) == 1 for ids in received.values())            # a repeat is the same number and id
    by_seq = {r["seq"]: r["event_id"] for r in query(settings, "SELECT seq, event_id FROM deliveries")}
    assert {seq: ids.pop() for seq, ids in received.items()} == by_seq
    vias = {r[0] for r in query(settings, "SELECT via FROM attempts WHERE outcome = 'delivered'")}
    assert vias == {"push", "pull"}
    delivered = query(settings, "SELECT DISTINCT seq FROM attempts WHERE outcome = 'delivered'")
    assert sorted(r[0] for r in delivered) == list(range(1, total + 1))  # every number has its receipt


def test_a_stopping_server_answers_its_waiting_polls_at_once(settings):
    _pull_partner(settings)
    answers: list[dict] = []
    with pull_api(settings, "acme") as api:
        polling = threading.Thread(target=lambda: answers.append(api.changes(wait=30)))
        polling.start()
        wait_for(lambda: api.waiting() == 1, "the poll waiting")
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping
    polling.join(10)
    assert answers == [{"partner": "acme", "after": None, "acknowledged": 0, "changes": [], "last_seq": None,
                        "more": False, "next": "/v1/changes"}]
    assert stopped_in < 10  # not the 30 s of the poll (nor aiohttp's 60 s wait for handlers)
