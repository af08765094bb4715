"""Per-partner sequence numbers (issue 7): gapless and monotonic per partner, the same on every
retry, carried in the header, the ninjs envelope and the NewsML-G2 transmitId; a partner that
lost one asks for it again by number."""

from __future__ import annotations

import json
import random
import time

from lxml import etree

from newswire import corpus
from newswire.consumers.webhooks import outbox, pusher, receipts, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.partners import Partner
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import LOOPBACK, PartnerServer, cli, config, publish, query, register, wait_for
from tests.conftest import on_each_store

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def _stories(prefix: str, n: int) -> list[dict]:
    rng = random.Random(8)
    return [corpus.story(rng, f"{prefix}-{i}", body_bytes=400) for i in range(n)]


def test_each_partner_has_its_own_gapless_sequence_kept_across_retries(settings):
    rng = random.Random(3)
    flaky = PartnerServer([new_secret()], respond=lambda n, r: rng.choice([200, 500, "close"])).start()
    steady = PartnerServer([new_secret()]).start()
    register(settings, "flaky", flaky, concurrency=6)
    register(settings, "steady", steady, concurrency=6)
    events = _stories("sq", 20)
    events.append(corpus.next_version(events[3], "corrected"))
    try:
        with pusher.Running(settings, config(schedule=(0,) + (0.05,) * 30)):
            publish(settings, events[:10])
            publish(settings, events[10:])
            wait_for(lambda: len(flaky.ok()) == 21 and len(steady.ok()) == 21, "21 each")
    finally:
        flaky.stop()
        steady.stop()
    for server in (flaky, steady):
        got = server.snapshot()
        assert sorted(r.seq for r in server.ok()) == list(range(1, 22))
        by_id: dict[str, set[int]] = {}
        for r in got:
            assert r.verified and r.envelope["sequence"] == r.seq
            by_id.setdefault(r.webhook_id, set()).add(r.seq)
        assert all(len(seqs) == 1 for seqs in by_id.values())  # a retry carries its first number
    assert len(flaky.snapshot()) > 21  # there were retries
    numbered = query(settings, "SELECT id, next_seq FROM partners ORDER BY id")
    assert [tuple(r) for r in numbered] == [("flaky", 22), ("steady", 22)]


def test_newsml_partners_get_the_sequence_as_transmit_id_and_rss_partners_an_item(settings):
    server = PartnerServer([new_secret()]).start()
    rss = PartnerServer([new_secret()]).start()
    register(settings, "g2", server, format="newsml")
    register(settings, "rss", rss, format="rss")
    try:
        with pusher.Running(settings, config()):
            publish(settings, _stories("nm", 3))
            wait_for(lambda: len(server.ok()) == 3 and len(rss.ok()) == 3, "three NewsML-G2 messages, 3 RSS items")
    finally:
        server.stop()
        rss.stop()
    for r in rss.snapshot():
        assert r.verified and r.headers["Content-Type"] == "application/rss+xml"
        assert etree.fromstring(r.body).tag == "item" and r.seq in (1, 2, 3)
    ns = {"g2": "http://iptc.org/std/nar/2006-10-01/"}
    for r in server.snapshot():
        assert r.verified and r.headers["Content-Type"] == "application/vnd.iptc.g2.newsmessage+xml"
        transmit_id = etree.fromstring(r.body).findtext("g2:header/g2:transmitId", namespaces=ns)
        assert transmit_id == str(r.seq)


def test_a_partner_that_lost_a_delivery_sees_the_gap_and_gets_it_back_by_resend(settings):
    server = PartnerServer([new_secret()]).start()
    register(settings, "picky", server, concurrency=1)
    events = _stories("rs", 6)
    try:
        with pusher.Running(settings, config()):
            publish(settings, events)
            wait_for(lambda: len(server.ok()) == 6, "six deliveries")
            # the partner's ingest "lost" number 4 (answered 200, then dropped it): it sees the gap
            kept = [r for r in server.ok() if r.seq != 4]
            numbers = sorted(r.seq for r in kept)
            missing = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
            assert missing == [4]
            lost = next(r for r in server.ok() if r.seq == 4)
            assert "resending 1 deliveries (4-4)" in cli(settings, "deliveries", "resend", "--partner", "picky",
                                                        "--seq", "4").output
            wait_for(lambda: len(server.ok()) == 7, "the resent one")
    finally:
        server.stop()
    again = server.snapshot()[-1]
    assert again.seq == 4 and again.webhook_id == lost.webhook_id and again.body == lost.body and again.verified
    assert tuple(query(settings, "SELECT tries, status FROM deliveries WHERE seq = 4")[0]) == (2, "delivered")


def test_a_resend_while_the_attempt_is_out_sends_it_again_after_that_attempt(settings):
    """The resend comes while the partner still holds the first attempt: that attempt's receipt
    (200) is recorded, and the delivery goes again, instead of the receipt settling it."""
    server = PartnerServer([new_secret()], respond=lambda n, r: "block" if n == 1 else 200).start()
    register(settings, "holding", server, concurrency=1)
    try:
        with pusher.Running(settings, config(timeout_s=60)):
            publish(settings, _stories("ro", 1))
            wait_for(lambda: len(server.snapshot()) == 1, "the first attempt at the partner")
            assert "resending 1 deliveries (1-1)" in cli(settings, "deliveries", "resend", "--partner", "holding",
                                                        "--seq", "1").output
            server.gate.set()
            wait_for(lambda: len(server.snapshot()) == 2 and
                     query(settings, "SELECT status, tries FROM deliveries")[0][1] == 2, "the resent attempt, recorded")
    finally:
        server.gate.set()
        server.stop()
    first, again = server.snapshot()
    assert (again.seq, again.webhook_id, again.body) == (1, first.webhook_id, first.body) and again.verified
    assert [tuple(r) for r in query(settings, "SELECT attempt, outcome FROM attempts ORDER BY id")] == [
        (1, "delivered"), (2, "delivered")]
    assert tuple(query(settings, "SELECT status, revision FROM deliveries")[0]) == ("delivered", 1)


def test_an_attempt_read_before_a_resend_or_redrive_leaves_the_delivery_due_when_recorded(settings):
    """The store's side of the race, without timing: a receipt for the row as read before the
    resend (or redrive) is kept, and the delivery stays due; one read after it settles it."""
    db = store.connect(settings)
    try:
        registry.add(db, Partner(id="late", name="Late", url="http://127.0.0.1:9/hook", secrets=(new_secret(),)),
                     allow=LOOPBACK)
        rows = [outbox.Queued("late", f"rr-{n}", f"rr-{n}", 1, "published", "application/json", time.time(),
                              (b'{"sequence":', b"}")) for n in (1, 2)]
        outbox.enqueue(db, rows, {r.event_id: (r.article_id, 1, "published", b"avro") for r in rows})
        sent = outbox.pending_after(db, 0, limit=2)  # as the dispatcher holds them
        outbox.record(db, [(sent[1], outbox.Attempt(500, 3.0, "HTTP 500", "dead", None), time.time())])
        sent[1].tries += 1  # as the dispatcher counts it
        receipts.resend(db, "late", 1, 1)
        outbox.redrive(db, partner_id="late")
        ok = outbox.Attempt(200, 3.0, None, "delivered", None)
        outbox.record(db, [(sent[0], ok, time.time()), (sent[1], ok, time.time())])
        state = "SELECT status, tries, attempts, revision, last_status, delivered_at FROM deliveries ORDER BY seq"
        assert [tuple(r) for r in db.execute(state)] == [("pending", 1, 0, 1, 200, None),
                                                          ("pending", 2, 0, 1, 200, None)]
        outbox.record(db, [(outbox.pending_after(db, 0, limit=1)[0], ok, time.time())])  # read after the resend
        assert db.execute("SELECT status, revision FROM deliveries WHERE seq = 1").fetchone()[0] == "delivered"
        assert [tuple(r) for r in db.execute("SELECT seq, attempt, outcome FROM attempts ORDER BY id")] == [
            (2, 1, "dead"), (1, 1, "delivered"), (2, 2, "delivered"), (1, 2, "delivered")]
    finally:
        db.close()


def test_gaps_lists_numbers_assigned_but_not_acknowledged(settings):
    server = PartnerServer([new_secret()], respond=lambda n, r: 500 if r.headers["newswire-sequence"] == "2" else 200)
    server.start()
    register(settings, "holes", server, concurrency=1)
    try:
        with pusher.Running(settings, config(schedule=(0, 0.05))):
            publish(settings, _stories("gp", 3))
            wait_for(lambda: len(server.ok()) == 2 and
                     query(settings, "SELECT count(*) FROM deliveries WHERE status = 'dead'")[0][0] == 1,
                     "two delivered, one dead")
    finally:
        server.stop()
    report = cli(settings, "deliveries", "gaps", "--partner", "holes").output
    lines = report.strip().splitlines()
    assert lines[1].startswith("2\tgp-") and "\tdead\t2\tHTTP 500" in lines[1]
    assert lines[-1] == "1 unacknowledged"
    unknown = cli(settings, "deliveries", "gaps", "--partner", "nobody", ok=False)
    assert unknown.exit_code == 1 and "no partner 'nobody'" in unknown.output


def test_numbers_taken_by_another_writer_meanwhile_move_the_batch_up_without_gaps(tmp_path):
    """A replay queues for a partner while the pusher's batch is open: no number is used twice."""
    from dataclasses import replace
    from types import SimpleNamespace

    from newswire import bus, codec
    from newswire.config import Settings
    from newswire.consumers.webhooks import outbox, store

    settings = replace(Settings.from_env(), home=tmp_path)
    register(settings, "racy", PartnerServer([new_secret()]))  # registered only, never started
    enqueuer = outbox.Enqueuer(settings)
    events = _stories("race", 2)
    for event in events:
        enqueuer.handle(bus.Delivery(event, SimpleNamespace(value=codec.encode(event))))
    other = store.connect(settings)
    other.execute("UPDATE partners SET next_seq = next_seq + 3")  # the replay took 1, 2, 3
    other.close()
    enqueuer.commit()
    enqueuer.close()
    rows = query(settings, "SELECT seq, id FROM deliveries ORDER BY seq")
    assert [r[0] for r in rows] == [4, 5]
    assert [json.loads(_payload(settings, r[1]))["sequence"] for r in rows] == [4, 5]
    assert query(settings, "SELECT next_seq FROM partners")[0][0] == 6


def test_an_event_id_seen_again_on_another_event_is_not_delivered_twice(tmp_path):
    """The event id is the idempotency key: a second event reusing one (a broken producer) does
    not reach a partner that already has that id, in the same batch or a later one."""
    from dataclasses import replace
    from types import SimpleNamespace

    from newswire import bus, codec
    from newswire.config import Settings
    from newswire.consumers.webhooks import outbox

    settings = replace(Settings.from_env(), home=tmp_path)
    register(settings, "idem", PartnerServer([new_secret()]))
    first, other, third = _stories("dup", 3)
    other["event_id"] = third["event_id"] = first["event_id"]
    enqueuer = outbox.Enqueuer(settings)
    for batch in ([first, other], [third]):
        for event in batch:
            enqueuer.handle(bus.Delivery(event, SimpleNamespace(value=codec.encode(event))))
        enqueuer.commit()
    enqueuer.close()
    assert [tuple(r) for r in query(settings, "SELECT article_id, seq FROM deliveries")] == [("dup-0", 1)]


def _payload(settings, delivery_id: int) -> bytes:
    db = store.connect(settings)
    try:
        return outbox.payload(db, delivery_id)
    finally:
        db.close()
