"""The pusher (`newswire webhooks run`, a real subprocess) is SIGKILLed in the middle of retries
and started again: every delivery still arrives, with the webhook-id and sequence number it had."""

from __future__ import annotations

import random
import signal
import time
from collections import defaultdict

from newswire import corpus
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import PartnerServer, publish, pusher_process, query, register, wait_for
from tests.conftest import on_each_store

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def test_kill_9_in_the_middle_of_retries_loses_nothing_and_keeps_webhook_ids(settings, tmp_path):
    state = {"up": False}
    server = PartnerServer([new_secret()], respond=lambda n, r: 200 if state["up"] else 500).start()
    register(settings, "steady", server, concurrency=4)
    rng = random.Random(2)
    events = [corpus.story(rng, f"k-{i}", body_bytes=500) for i in range(12)]
    events.append(corpus.next_version(events[0], "killed"))
    log = tmp_path / "pusher.log"
    process = pusher_process(settings, log)
    try:
        publish(settings, events)
        wait_for(lambda: len(query(settings, "SELECT 1 FROM attempts WHERE outcome = 'retry'")) >= 15,
                 "retries under way", timeout_s=60)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        pending = query(settings, "SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0]
        assert pending == len(events)  # nothing delivered yet, nothing lost: all pending on disk
        before = {r.webhook_id for r in server.snapshot()}
        state["up"] = True
        process = pusher_process(settings, log)
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
                 == len(events), "every delivery after the restart", timeout_s=60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        server.stop()
    assert process.returncode == 0, log.read_text()[-3000:]
    got = server.snapshot()
    assert all(r.verified for r in got)
    delivered = [r for r in got if r.answered == 200]
    assert sorted(r.webhook_id for r in delivered) == sorted(e["event_id"] for e in events)  # each exactly once
    assert before <= {r.webhook_id for r in delivered}  # the ids retried before the kill, delivered after it
    seqs = defaultdict(set)
    for r in got:
        seqs[r.webhook_id].add(r.seq)
    assert all(len(s) == 1 for s in seqs.values())  # a retry keeps its sequence number across the restart
    assert sorted(r.seq for r in delivered) == list(range(1, len(events) + 1))
    k0 = [r.article[2] for r in delivered if r.article[0] == "k-0"]
    assert k0 == ["published", "killed"]


def test_a_retry_after_pause_outlives_a_kill_9_of_the_pusher(settings, tmp_path):
    """A partner answers its first request 429 with Retry-After; the pusher is killed with -9
    once that attempt is recorded and started again: the partner is called again (for either
    article) only when its pause is over, by the pusher that did not hear the answer."""
    pause_s = 20  # the kill and a new pusher's start took up to 11 s on a busy 2-core machine (PostgreSQL)
    server = PartnerServer([new_secret()], respond=lambda n, r: (429, {"Retry-After": str(pause_s)}) if n == 1
                           else 200).start()
    register(settings, "patient", server, concurrency=1)
    rng = random.Random(5)
    events = [corpus.story(rng, f"ra-{i}", body_bytes=300) for i in range(2)]
    log = tmp_path / "pusher.log"
    process = pusher_process(settings, log)
    try:
        publish(settings, events)
        wait_for(lambda: query(settings, "SELECT 1 FROM attempts WHERE outcome = 'throttled'"), "the 429 recorded",
                 timeout_s=60)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert query(settings, "SELECT count(*) FROM deliveries WHERE status = 'pending'")[0][0] == 2
        asked_at = server.snapshot()[0].at
        process = pusher_process(settings, log)
        wait_for(lambda: log.read_text().count('"pusher_started"') == 2, "the new pusher started", timeout_s=60)
        restarted_at = time.time()
        wait_for(lambda: len(server.ok()) == 2, "both articles after the pause", timeout_s=pause_s + 60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        server.stop()
    assert process.returncode == 0, log.read_text()[-3000:]
    # the new pusher was running (not only launched) while the pause still ran
    assert restarted_at < asked_at + pause_s, (restarted_at - asked_at, pause_s)
    got = server.snapshot()
    assert len(got) == 3 and got[0].answered[0] == 429
    assert all(r.at >= asked_at + pause_s for r in got[1:]), [r.at - asked_at for r in got]
    assert sorted(r.webhook_id for r in got[1:]) == sorted(e["event_id"] for e in events)
