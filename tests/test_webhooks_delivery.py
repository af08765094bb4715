"""Partner push through the real broker to real HTTP partners on 127.0.0.1: what each kind of
answer leads to. Every received request is verified with the official standardwebhooks package."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

from kafka import TopicPartition

from newswire import bus, corpus
from newswire.consumers.webhooks import delivery, pusher, ssrf
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import LOOPBACK, PartnerServer, cli, config, publish, query, register, wait_for
from tests.conftest import on_each_store

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def _story(article_id: str, seed: int = 1, **changes) -> dict:
    event = corpus.story(random.Random(seed), article_id, body_bytes=800)
    event.update(changes)
    return event


def _versions(article_id: str, kinds: list[str], seed: int = 1) -> list[dict]:
    events = [_story(article_id, seed)]
    for kind in kinds:
        events.append(corpus.next_version(events[-1], kind))
    return events


def _outcomes(settings, partner_id: str) -> list[str]:
    return [r[0] for r in query(settings, "SELECT outcome FROM attempts WHERE partner_id = ? ORDER BY id", partner_id)]


def test_a_partner_answering_200_gets_every_version_in_order_signed_with_the_event_id(settings):
    server = PartnerServer([new_secret()]).start()
    register(settings, "acme", server)
    events = _versions("a-1", ["updated", "corrected", "killed"]) + [_story("a-2", 2)]
    try:
        with pusher.Running(settings, config()):
            publish(settings, events)
            wait_for(lambda: len(server.ok()) == 5, "5 deliveries")
    finally:
        server.stop()
    got = server.snapshot()
    assert all(r.verified for r in got)
    assert sorted(r.webhook_id for r in got) == sorted(e["event_id"] for e in events)
    a1 = [r.article for r in got if r.article[0] == "a-1"]
    assert a1 == [("a-1", 1, "published"), ("a-1", 2, "updated"), ("a-1", 3, "corrected"), ("a-1", 4, "killed")]
    assert sorted(r.seq for r in got) == [1, 2, 3, 4, 5]
    assert {r.headers["Content-Type"] for r in got} == {"application/json"}
    rows = query(settings, "SELECT status, attempts, tries FROM deliveries")
    assert [tuple(r) for r in rows] == [("delivered", 1, 1)] * 5


def test_a_500_is_retried_with_the_same_webhook_id_and_body_until_a_2xx(settings):
    server = PartnerServer([new_secret()], respond=lambda n, request: 500 if n <= 2 else 200).start()
    register(settings, "flaky", server)
    event = _story("r-1")
    try:
        with pusher.Running(settings, config()):
            publish(settings, [event])
            wait_for(lambda: len(server.ok()) == 1, "the third attempt to succeed")
    finally:
        server.stop()
    got = server.snapshot()
    assert len(got) == 3 and all(r.verified for r in got)
    assert {r.webhook_id for r in got} == {event["event_id"]}
    assert len({r.body for r in got}) == 1
    assert _outcomes(settings, "flaky") == ["retry", "retry", "delivered"]
    attempts = query(settings, "SELECT attempt, status_code, next_attempt_at FROM attempts ORDER BY id")
    assert [(a[0], a[1]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert attempts[0][2] is not None and attempts[2][2] is None


def test_410_gone_disables_the_partner_and_holds_its_deliveries(settings):
    server = PartnerServer([new_secret()], respond=lambda n, request: 410).start()
    register(settings, "gone", server, concurrency=1)
    try:
        with pusher.Running(settings, config()):
            publish(settings, [_story("g-1"), _story("g-2", 2)])
            wait_for(lambda: query(settings, "SELECT enabled FROM partners")[0][0] == 0, "the partner disabled")
            wait_for(lambda: len(query(settings, "SELECT 1 FROM deliveries")) == 2, "both queued")
    finally:
        server.stop()
    assert len(server.snapshot()) == 1  # one at a time (concurrency 1), and nothing after the 410
    reason = query(settings, "SELECT disabled_reason FROM partners")[0][0]
    assert reason.startswith("410 Gone")
    assert _outcomes(settings, "gone") == ["gone"]
    assert {r[0] for r in query(settings, "SELECT status FROM deliveries")} == {"pending"}


def test_429_retry_after_pauses_the_partner_without_spending_an_attempt(settings):
    def respond(n, request):
        return (429, {"Retry-After": "1"}) if n == 1 else 200
    server = PartnerServer([new_secret()], respond=respond).start()
    register(settings, "busy", server)
    try:
        with pusher.Running(settings, config(schedule=(0, 0.05))):
            publish(settings, [_story("t-1")])
            wait_for(lambda: len(server.ok()) == 1, "delivery after the pause")
    finally:
        server.stop()
    first, second = server.snapshot()
    assert second.at - first.at >= 1.0  # Retry-After honoured (nothing sent during the pause)
    assert _outcomes(settings, "busy") == ["throttled", "delivered"]
    assert tuple(query(settings, "SELECT attempts, tries FROM deliveries")[0]) == (1, 2)  # the 429 spent none


def test_503_retry_after_as_an_http_date_is_honoured(settings):
    def respond(n, request):
        when = datetime.now(timezone.utc) + timedelta(seconds=3)
        return (503, {"Retry-After": format_datetime(when, usegmt=True)}) if n == 1 else 200
    server = PartnerServer([new_secret()], respond=respond).start()
    register(settings, "maint", server)
    try:
        with pusher.Running(settings, config(schedule=(0, 0.05))):
            publish(settings, [_story("m-1")])
            wait_for(lambda: len(server.ok()) == 1, "delivery after the maintenance window")
    finally:
        server.stop()
    first, second = server.snapshot()
    assert second.at - first.at >= 1.0  # at least 2 s of the 3 (whole seconds)
    assert _outcomes(settings, "maint") == ["throttled", "delivered"]


def test_a_hanging_partner_times_out_and_a_dropped_connection_fails_then_both_are_retried(settings):
    hanging = PartnerServer([new_secret()], respond=lambda n, r: "hang" if n == 1 else 200).start()
    closing = PartnerServer([new_secret()], respond=lambda n, r: "close" if n == 1 else 200).start()
    register(settings, "hangs", hanging)
    register(settings, "closes", closing)
    try:
        with pusher.Running(settings, config(timeout_s=0.5)):
            publish(settings, [_story("h-1")])
            wait_for(lambda: len(hanging.ok()) == 1 and len(closing.ok()) == 1, "both delivered on retry")
    finally:
        hanging.stop()
        closing.stop()
    errors = dict(query(settings, "SELECT partner_id, error FROM attempts WHERE outcome = 'retry'"))
    assert "timed out" in errors["hangs"]
    assert errors["closes"] and "timed out" not in errors["closes"]
    for server in (hanging, closing):
        assert len({r.webhook_id for r in server.snapshot()}) == 1 and all(r.verified for r in server.snapshot())


def test_a_partner_answering_in_time_while_the_pusher_is_busy_is_not_timed_out():
    """The pusher's event loop is blocked past the deadline (a stand-in for a saturated pusher)
    while the partner answers well within its timeout: the attempt is delivered, not timed out.
    The same request to a partner that never answers still times out."""
    answering = PartnerServer([new_secret()], respond=lambda n, r: "block").start()
    hanging = PartnerServer([new_secret()], respond=lambda n, r: "hang").start()

    async def attempt(url: str, busy_s: float) -> delivery.Response:
        client = delivery.session(ssrf.GuardedResolver(LOOPBACK), in_flight=4)
        try:
            threading.Timer(0.2, answering.gate.set).start()  # the partner answers after 0.2 s
            asyncio.get_running_loop().call_later(0.05, time.sleep, busy_s)  # the loop blocked meanwhile
            return await delivery.post(client, url, b"{}", {}, allow=LOOPBACK, timeout_s=1.0)
        finally:
            await client.close()

    try:
        answered = asyncio.run(attempt(answering.url, busy_s=1.5))
        hung = asyncio.run(attempt(hanging.url, busy_s=0.0))
    finally:
        answering.stop()
        hanging.stop()
    assert answered.ok and answered.status == 200, answered.error
    assert not hung.ok and hung.error == "timed out after 1 s"


def test_a_partner_down_then_back_gets_everything_in_order(settings):
    server = PartnerServer([new_secret()]).start()
    register(settings, "sleepy", server)
    server.stop()
    events = _versions("d-1", ["updated", "updated"])
    try:
        with pusher.Running(settings, config(schedule=(0,) + (0.2,) * 30)):
            publish(settings, events)
            wait_for(lambda: len(query(settings, "SELECT 1 FROM attempts WHERE outcome = 'retry'")) >= 3,
                     "failed attempts while the partner is down")
            server.start()
            wait_for(lambda: len(server.ok()) == 3, "all three after it came back")
    finally:
        server.stop()
    assert [r.article[1] for r in server.snapshot()] == [1, 2, 3]
    assert all("cannot connect" in r[0] for r in
               query(settings, "SELECT error FROM attempts WHERE outcome = 'retry'"))


def test_after_the_last_attempt_the_delivery_is_dead_lettered_and_redrive_sends_it(settings):
    failing = {"on": True}
    server = PartnerServer([new_secret()], respond=lambda n, r: 500 if failing["on"] else 200).start()
    register(settings, "doomed", server)
    event = _story("x-1")
    try:
        with pusher.Running(settings, config(schedule=(0, 0.1, 0.1))):
            publish(settings, [event])
            wait_for(lambda: [r[0] for r in query(settings, "SELECT status FROM deliveries")] == ["dead"], "dead")
            assert len(server.snapshot()) == 3
            reader = bus.consumer(settings, None, consumer_timeout_ms=1500)
            reader.assign([TopicPartition(settings.topics.dead_letter, 0)])
            reader.seek_to_beginning()
            dead = list(reader)
            reader.close()
            assert len(dead) == 1
            headers = {k: v.decode() for k, v in dead[0].headers}
            assert headers["webhook.partner"] == "doomed" and headers["event_id"] == event["event_id"]
            assert headers["webhook.attempts"] == "3" and "HTTP 500" in headers["dlq.reason"]
            assert dead[0].key == b"x-1"
            failing["on"] = False
            assert "redriven: 1" in cli(settings, "deliveries", "redrive", "--partner", "doomed").output
            wait_for(lambda: len(server.ok()) == 1, "redriven delivery")
    finally:
        server.stop()
    assert {r.webhook_id for r in server.snapshot()} == {event["event_id"]}
    assert _outcomes(settings, "doomed") == ["retry", "retry", "dead", "delivered"]


def test_a_redirect_is_not_followed_and_counts_as_a_failure_with_its_status(settings):
    target = PartnerServer([new_secret()]).start()
    redirecting = PartnerServer([new_secret()], respond=lambda n, r: (307, {"Location": target.url})).start()
    register(settings, "moved", redirecting)
    try:
        with pusher.Running(settings, config(schedule=(0, 0.05))):
            publish(settings, [_story("rd-1")])
            wait_for(lambda: [r[0] for r in query(settings, "SELECT status FROM deliveries")] == ["dead"], "dead")
    finally:
        target.stop()
        redirecting.stop()
    assert target.snapshot() == [] and len(redirecting.snapshot()) == 2
    assert [tuple(r) for r in query(settings, "SELECT status_code, error FROM attempts")] == \
        [(307, "HTTP 307 Temporary Redirect")] * 2
    status = cli(settings, "deliveries", "status").output
    assert "moved\tenabled\t0\t0\t1\t1\t" in status
