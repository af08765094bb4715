"""Strict in-order mode: a partner with ``ordering strict`` gets its sequence numbers one after
the other, one request at a time, whatever its concurrency; a delivery being retried holds the
line, and so does a dead one, until it is redriven or skipped. Real broker, real HTTP partner."""

from __future__ import annotations

import random
import signal
import time

from newswire import corpus
from newswire.consumers.webhooks import pusher
from newswire.consumers.webhooks.signing import new_secret
from tests.conftest import on_each_store
from tests.webhooks_support import PartnerServer, cli, config, publish, pusher_process, query, register, wait_for

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def _stories(count: int) -> list[dict]:
    return [corpus.story(random.Random(n), f"s-{n}", body_bytes=300) for n in range(1, count + 1)]


def _strict(settings, server: PartnerServer) -> None:
    register(settings, "acme", server, concurrency=4)
    shown = cli(settings, "partners", "update", "acme", "--ordering", "strict").output
    assert "ordering strict" in shown


def _first_request_at(server: PartnerServer, seq: int) -> float:
    return min(r.at for r in server.snapshot() if r.seq == seq)


def _status(settings, seq: int, partner_id: str = "acme") -> str | None:
    rows = query(settings, "SELECT status FROM deliveries WHERE partner_id = ? AND seq = ?", partner_id, seq)
    return rows[0][0] if rows else None


def test_a_retried_delivery_holds_the_line_and_one_request_at_a_time_goes(settings):
    failures = {"left": 3}

    def respond(n, request):
        if request.headers["newswire-sequence"] == "3" and failures["left"]:
            failures["left"] -= 1
            return 500
        return 200

    server = PartnerServer([new_secret()], respond).start()
    _strict(settings, server)
    try:
        with pusher.Running(settings, config()):
            publish(settings, _stories(8))
            wait_for(lambda: len(server.ok()) == 8, "8 deliveries")
    finally:
        server.stop()

    arrived = [r.seq for r in server.snapshot()]
    assert arrived == [1, 2, 3, 3, 3, 3, 4, 5, 6, 7, 8]  # 4 only after 3 got through
    receipts = query(settings, "SELECT seq, at, duration_ms FROM attempts ORDER BY id")
    for before, after in zip(receipts, receipts[1:]):  # each request began after the one before was answered
        assert after["at"] - after["duration_ms"] / 1000 >= before["at"] - 0.001, (before["seq"], after["seq"])


def test_a_dead_delivery_holds_the_line_until_redriven_or_skipped(settings):
    broken = {2, 5}

    def respond(n, request):
        return 500 if int(request.headers["newswire-sequence"]) in broken else 200

    server = PartnerServer([new_secret()], respond).start()
    _strict(settings, server)
    try:
        with pusher.Running(settings, config(schedule=(0, 0.1, 0.1))):
            publish(settings, _stories(6))
            wait_for(lambda: _status(settings, 2) == "dead", "seq 2 dead")
            shown = cli(settings, "partners", "show", "acme").output
            assert "HELD:" in shown and "seq 2 is dead (HTTP 500" in shown and "--through 2" in shown
            assert {r.seq for r in server.snapshot()} == {1, 2}

            broken.discard(2)
            redriven_at = time.time()
            cli(settings, "deliveries", "redrive", "--partner", "acme")
            wait_for(lambda: _status(settings, 5) == "dead", "seq 5 dead")
            assert [r.seq for r in server.ok()] == [1, 2, 3, 4]
            assert _first_request_at(server, 3) > redriven_at

            skipped_at = time.time()
            out = cli(settings, "deliveries", "skip", "--partner", "acme", "--through", "5").output
            assert "passes dead deliveries up to seq 5" in out and "HELD" not in out
            wait_for(lambda: _status(settings, 6) == "delivered", "seq 6 delivered")
    finally:
        server.stop()

    assert [r.seq for r in server.ok()] == [1, 2, 3, 4, 6]
    assert _first_request_at(server, 6) > skipped_at
    gaps = cli(settings, "deliveries", "gaps", "--partner", "acme", "--json").output
    assert '"seq": 5' in gaps and '"status": "dead"' in gaps  # skipped, not delivered: still a gap to resend


def test_skip_is_for_a_strict_partner(settings):
    server = PartnerServer([new_secret()])
    register(settings, "acme", server)
    refused = cli(settings, "deliveries", "skip", "--partner", "acme", "--through", "3", ok=False)
    assert refused.exit_code == 1 and "ordering article" in refused.output


def test_a_line_held_by_a_dead_delivery_stays_held_across_a_kill_9_of_the_pusher(settings, tmp_path):
    up = {"seq 2": False}
    server = PartnerServer([new_secret()], lambda n, r: 500 if r.headers["newswire-sequence"] == "2"
                           and not up["seq 2"] else 200).start()
    _strict(settings, server)
    other = PartnerServer([new_secret()]).start()
    register(settings, "other", other)
    log = tmp_path / "pusher.log"
    process = pusher_process(settings, log, NEWSWIRE_WEBHOOK_SCHEDULE="0,0.2,0.2")
    try:
        stories = _stories(5)
        publish(settings, stories[:4])
        wait_for(lambda: _status(settings, 2) == "dead", "seq 2 dead", timeout_s=60)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = pusher_process(settings, log, NEWSWIRE_WEBHOOK_SCHEDULE="0,0.2,0.2")
        publish(settings, stories[4:])
        wait_for(lambda: len(other.ok()) == 5, "the restarted pusher sending to the other partner", timeout_s=60)
        assert {r.seq for r in server.snapshot()} == {1, 2}  # still held: nothing past the dead 2
        up["seq 2"] = True
        cli(settings, "deliveries", "redrive", "--partner", "acme")
        wait_for(lambda: _status(settings, 5) == "delivered", "seq 5 delivered", timeout_s=60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        server.stop()
        other.stop()
    assert process.returncode == 0, log.read_text()[-3000:]
    assert [r.seq for r in server.ok()] == [1, 2, 3, 4, 5]
    arrived = [r.seq for r in server.snapshot()]
    assert arrived == sorted(arrived)
