"""`newswire replay --partner P --send` sends only as P's one sender: refused (before anything is
queued) while a running pusher sends for P, naming P and that pusher; while it sends, the
pushers leave P alone (on PostgreSQL it holds P's lease, on SQLite the state file's pusher
lock), and once it stops a pusher takes P over with nothing sent twice."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections import Counter
from datetime import timedelta

import pytest

from newswire import corpus
from newswire.consumers.replay.sender import PartnerSender
from newswire.consumers.webhooks import pusher, store
from newswire.consumers.webhooks.signing import new_secret
from tests.conftest import on_both_stores
from tests.replay_support import NEWSWIRE, T0, cli_env, events, produce
from tests.test_replay import cli
from tests.webhooks_support import PartnerServer, config, publish, query, register, wait_for


def _lease_of(settings, partner_id: str) -> str:
    """The holder of the partner's unexpired lease ('' when none)."""
    rows = query(settings, "SELECT owner FROM partner_leases WHERE partner_id = ? AND expires_at > "
                           "extract(epoch FROM now())", partner_id)
    return rows[0][0] if rows else ""


def _deliveries(settings) -> int:
    return query(settings, "SELECT count(*) FROM deliveries")[0][0]


@on_both_stores
def test_replay_send_is_refused_while_a_pusher_sends_for_the_partner_and_the_running_pusher_delivers_instead(
        settings):
    server = PartnerServer([new_secret()]).start()
    register(settings, "acme", server)
    stories = [corpus.story(random.Random(21), f"ls-{i}", body_bytes=300) for i in range(3)]
    try:
        with pusher.Running(settings, config()):
            publish(settings, stories)
            wait_for(lambda: len(server.ok()) == 3, "three live deliveries")
            if store.shared(settings):
                wait_for(lambda: _lease_of(settings, "acme"), "the pusher holding acme's lease")
                holder = _lease_of(settings, "acme")
            else:
                holder = f"pid {os.getpid()}"
            refused = cli(settings, "replay", "--partner", "acme", "--send", "--no-progress", ok=False)
            assert refused.exit_code == 1
            assert "refused --send: partner acme is sent for by" in refused.output and holder in refused.output
            assert "run the replay without --send" in refused.output
            assert _deliveries(settings) == 3  # nothing queued

            queued = cli(settings, "replay", "--partner", "acme", "--no-progress")
            assert "re-sent 3" in queued.output
            wait_for(lambda: len(server.ok()) == 6, "the replayed deliveries, sent by the pusher")
        assert sorted(r.seq for r in server.ok()) == list(range(1, 7))
    finally:
        server.stop()


@on_both_stores
def test_while_a_replay_sends_for_a_partner_the_pushers_leave_it_alone_and_take_it_over_after(settings):
    acme, other = (PartnerServer([new_secret()]).start() for _ in range(2))
    register(settings, "acme", acme)
    register(settings, "other", other)
    rng = random.Random(22)
    first, second = (corpus.story(rng, f"lt-{i}", body_bytes=300) for i in range(2))
    try:
        sender = PartnerSender(settings, "acme", config())
        try:
            with pusher.Running(settings, config()) as running:
                if not store.shared(settings):  # one pusher per SQLite file: the replay is it
                    wait_for(lambda: running.error is not None, "the pusher refused")
                    assert isinstance(running.error, pusher.PusherBusy)
                    assert f"a replay sending for partner acme (pid {sender.pid})" in str(running.error)
                    return
                publish(settings, [first])
                wait_for(lambda: len(acme.ok()) == 1 and len(other.ok()) == 1, "the story at both partners")
                assert _lease_of(settings, "acme").startswith("replay:")  # the replay sent it
                assert _lease_of(settings, "other") not in ("", _lease_of(settings, "acme"))
                sender.stop()
                wait_for(lambda: _lease_of(settings, "acme") not in ("", ) and
                         not _lease_of(settings, "acme").startswith("replay:"), "a pusher taking acme over")
                publish(settings, [second])
                wait_for(lambda: len(acme.ok()) == 2 and len(other.ok()) == 2, "the next story at both")
        finally:
            sender.stop()
        seqs = Counter(r.seq for r in acme.ok())
        assert seqs == Counter({1: 1, 2: 1})  # each number once: never two senders
        assert [r.article[0] for r in sorted(acme.ok(), key=lambda r: r.seq)] == ["lt-0", "lt-1"]
    finally:
        acme.stop()
        other.stop()


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_a_replay_killed_while_sending_lets_its_lease_run_out_and_a_pusher_takes_over_after_the_quiet_period(
        settings):
    produce(settings, events(60, body_bytes=300), start=T0, step=timedelta(seconds=10))
    server = PartnerServer([new_secret()], respond=lambda n, request: "block" if n == 20 else 200).start()
    register(settings, "acme", server)
    env = {**cli_env(settings), "NEWSWIRE_WEBHOOK_LEASE": "2", "NEWSWIRE_WEBHOOK_TIMEOUT": "30"}
    replay = subprocess.Popen([*NEWSWIRE, "replay", "--partner", "acme", "--since", "30d", "--send", "--no-progress"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(server.received) >= 20, "the replay sending, one request hanging", 60)
        assert _lease_of(settings, "acme").startswith("replay:")
        replay.kill()
        replay.wait(10)
        killed_at = time.time()
        with pusher.Running(settings, config(lease_s=2)):  # quiet period: its timeout 1 s + lease 2 s
            wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status <> 'delivered'")[0][0]
                     == 0 and len(server.ok()) > 20, "every delivery delivered by the pusher", 60)
            holder = _lease_of(settings, "acme")
        assert holder and not holder.startswith("replay:")
        after = [r for r in server.snapshot() if r.at > killed_at]
        # the replay's lease ran out (>= 2 s after its last renewal, <= 0.67 s before the kill), then
        # the pusher waited its quiet period (3 s) before sending
        assert min(r.at for r in after) >= killed_at + 2 - 2 / 3 + 3 - 0.1
        (total,) = query(settings, "SELECT count(*) FROM deliveries")[0]
        ids_of: dict[int, set[str]] = {}
        for r in server.ok():
            ids_of.setdefault(r.seq, set()).add(r.webhook_id)
        assert sorted(ids_of) == list(range(1, total + 1))  # gapless, every number delivered
        assert all(len(ids) == 1 for ids in ids_of.values())  # a number sent again keeps its webhook-id
    finally:
        if replay.poll() is None:
            replay.kill()
        server.stop()
