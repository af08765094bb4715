"""What a flash to many partners costs the pusher: a busy pusher opens one connection per partner
(a partner's further requests wait for its kept-alive one), and the registry read again in the
minutes after a bulk import parses only the partners that changed. Real broker, real HTTP partner."""

from __future__ import annotations

import random
import time

import pytest

from newswire import corpus
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import pusher, store
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import LOOPBACK, PartnerServer, config, publish, register, wait_for


def _blocking_partner(connections: set[int]) -> PartnerServer:
    """A partner that holds every request until its gate opens, noting each connection's port."""
    def respond(n, request):
        connections.add(request.transport.get_extra_info("peername")[1])
        return "block"
    return PartnerServer([new_secret()], respond=respond).start()


@pytest.mark.parametrize("spread_below, in_flight", [(1, 1), (10_000, 4)])
def test_a_busy_pusher_opens_one_connection_per_partner(settings, spread_below, in_flight):
    connections: set[int] = set()
    server = _blocking_partner(connections)
    register(settings, "p", server, concurrency=4)
    rng = random.Random(3)
    events = [corpus.story(rng, f"flash-{i}", body_bytes=400) for i in range(8)]
    try:
        with pusher.Running(settings, config(timeout_s=30, spread_below=spread_below)):
            publish(settings, events)
            wait_for(lambda: len(server.snapshot()) == in_flight, f"{in_flight} request(s) in flight")
            server.gate.set()
            wait_for(lambda: len(server.ok()) == len(events), "every story delivered")
    finally:
        server.gate.set()
        server.stop()
    assert len(connections) == in_flight  # busy: the others waited for the kept-alive one
    assert sorted(r.seq for r in server.snapshot()) == list(range(1, len(events) + 1))


def test_partners_read_again_are_parsed_only_when_they_changed(settings):
    db = store.connect(settings)
    try:
        for n in range(3):
            registry.add(db, registry.Partner(id=f"p{n}", name=f"P{n}", url=f"http://127.0.0.1:9/{n}",
                                              secrets=(new_secret(),)), allow=LOOPBACK)
        seen: dict[str, float] = {}
        first, at = registry.changed_since(db, 0.0, seen=seen)
        again, at = registry.changed_since(db, at, seen=seen)  # within the overlap: all three again
        registry.disable(db, "p1", "asked to stop")
        changed, _ = registry.changed_since(db, at, seen=seen)
        unremembered, _ = registry.changed_since(db, at)
    finally:
        db.close()
    assert [p.id for p in first] == ["p0", "p1", "p2"]
    assert again == []
    assert [(p.id, p.enabled) for p in changed] == [("p1", False)]
    assert [p.id for p in unremembered] == ["p0", "p1", "p2"]  # without ``seen``, as before


def test_a_slot_freed_goes_to_the_partner_waiting_longest(settings):
    """With every request slot taken, a partner whose story was just delivered waits behind the
    partners still waiting for theirs: each of four partners has its first story before any has
    its second (before, the partner just answered took the slot back at once, and the others
    waited until it had nothing left)."""
    def answer_soon(n, request):
        time.sleep(0.1)  # in this partner's own server thread
        return 200
    servers = [PartnerServer([new_secret()], respond=answer_soon).start() for _ in range(4)]
    for n, server in enumerate(servers):
        register(settings, f"p{n}", server, concurrency=1)
    rng = random.Random(5)
    events = [corpus.story(rng, f"fair-{i}", body_bytes=300) for i in range(3)]
    try:
        with pusher.Running(settings, config(timeout_s=30, max_inflight=2)):
            publish(settings, events)
            wait_for(lambda: all(len(s.ok()) == len(events) for s in servers), "every story at every partner")
    finally:
        for server in servers:
            server.stop()
    arrivals = sorted((r.at, n) for n, server in enumerate(servers) for r in server.snapshot())
    assert sorted(n for _, n in arrivals[:4]) == [0, 1, 2, 3]
    assert sorted(n for _, n in arrivals[4:8]) == [0, 1, 2, 3]
