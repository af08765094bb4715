"""Isolation between partners, the circuit breaker, and per-article order under failures,
through the real broker and real HTTP partners."""

from __future__ import annotations

import random
from collections import defaultdict

from newswire import corpus
from newswire.consumers.webhooks import pusher
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import PartnerServer, config, publish, query, register, wait_for
from tests.conftest import on_each_store

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def _stories(prefix: str, n: int) -> list[dict]:
    rng = random.Random(5)
    return [corpus.story(rng, f"{prefix}-{i}", body_bytes=600) for i in range(n)]


def _delivered(settings, partner_id: str) -> int:
    return query(settings, "SELECT count(*) FROM deliveries WHERE partner_id = ? AND status = 'delivered'",
                 partner_id)[0][0]


def test_a_slow_partner_never_delays_a_fast_one(settings):
    slow = PartnerServer([new_secret()], respond=lambda n, r: "block").start()
    fast = PartnerServer([new_secret()]).start()
    register(settings, "slow", slow, concurrency=2)
    register(settings, "fast", fast, concurrency=2)
    events = _stories("iso", 30)
    try:
        with pusher.Running(settings, config(timeout_s=60)):
            publish(settings, events)
            # the fast partner has everything (answered and recorded) while the slow one still holds its first two
            wait_for(lambda: len(fast.ok()) == 30 and _delivered(settings, "fast") == 30,
                     "all 30 at the fast partner, recorded")
            assert _delivered(settings, "slow") == 0
            assert len(slow.snapshot()) == 2  # its concurrency, no more
            slow.gate.set()
            wait_for(lambda: _delivered(settings, "slow") == 30, "the slow partner catching up")
    finally:
        slow.gate.set()
        slow.stop()
        fast.stop()
    for server in (slow, fast):
        assert all(r.verified for r in server.snapshot())
        assert sorted(r.webhook_id for r in server.snapshot()) == sorted(e["event_id"] for e in events)


def test_the_circuit_opens_after_consecutive_failures_probes_and_spends_no_attempt_while_open(settings):
    state = {"up": False}
    server = PartnerServer([new_secret()], respond=lambda n, r: 200 if state["up"] else 500).start()
    register(settings, "shaky", server, concurrency=1)
    events = _stories("cb", 5)
    schedule = (0, 0.05, 0.05, 0.05, 0.05)  # 5 attempts: all used up within ~0.2 s without the breaker
    try:
        with pusher.Running(settings, config(schedule=schedule, breaker_failures=3, breaker_cooldown_s=0.8)):
            publish(settings, events)
            wait_for(lambda: len(server.snapshot()) >= 6, "three failures and three probes")
            state["up"] = True
            wait_for(lambda: _delivered(settings, "shaky") == 5, "everything after recovery")
    finally:
        server.stop()
    times = [r.at for r in server.snapshot()]
    # failures 1-3 back to back; then the circuit is open: each probe comes a cool-down later
    assert times[3] - times[2] >= 0.8 and times[4] - times[3] >= 0.8
    outcomes = [r[0] for r in query(settings, "SELECT outcome FROM attempts")]
    assert "dead" not in outcomes  # the failing stretch outlasted the schedule, yet no delivery died
    assert all(r.verified for r in server.snapshot())


def test_versions_arrive_in_order_and_nothing_after_a_kill_under_failures_and_concurrency(settings):
    rng = random.Random(11)

    def respond(n, request):
        return rng.choice([200, 200, 500, "close", 503])
    server = PartnerServer([new_secret()], respond=respond).start()
    register(settings, "chaos", server, concurrency=8)
    events, kills = [], set()
    heads = _stories("ord", 6)
    latest = {e["article_id"]: e for e in heads}
    events.extend(heads)
    for round_ in range(5):
        for article_id, previous in list(latest.items()):
            if article_id in kills:
                continue
            kind = "killed" if round_ == 3 and article_id in ("ord-1", "ord-4") else "updated"
            latest[article_id] = corpus.next_version(previous, kind)
            events.append(latest[article_id])
            if kind == "killed":
                kills.add(article_id)
    try:
        with pusher.Running(settings, config(schedule=(0,) + (0.05,) * 40, timeout_s=2)):
            for start in range(0, len(events), 7):  # several batches, while earlier ones are in flight
                publish(settings, events[start:start + 7])
            wait_for(lambda: _delivered(settings, "chaos") == len(events), f"all {len(events)} delivered")
    finally:
        server.stop()
    seen = defaultdict(list)
    accepted = defaultdict(list)
    for r in server.snapshot():
        assert r.verified
        article_id, version, kind = r.article
        seen[article_id].append((version, kind))
        if r.answered == 200:
            accepted[article_id].append(version)
    for article_id, last in latest.items():
        versions = [v for v, _ in seen[article_id]]
        assert versions == sorted(versions), f"{article_id} went back in version: {versions}"
        assert accepted[article_id] == list(range(1, last["version"] + 1))
        if article_id in kills:
            assert seen[article_id][-1] == (last["version"], "killed")
