"""Operator commands that used to do nothing silently: they now say what is wrong (exit 1) or
what will happen, and a re-enabled partner is told what it missed and gets it by backfill
(real broker, the real pusher, real signed HTTP partners)."""

from __future__ import annotations

import json
import random
import re

from newswire import bus, corpus, topics
from newswire.consumers.webhooks import partner_state, pusher, receipts, store
from tests.webhooks_support import PartnerServer, cli, config, publish, query, register, wait_for
from tests.webhooks_support import new_secret
from tests.conftest import on_each_store

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()

LOOPBACK = {"NEWSWIRE_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8"}


def _run(settings, *args, ok=True, **env):
    return cli(settings, *args, env={**LOOPBACK, **env}, ok=ok)


def _failed(result, *expected: str) -> None:
    """Exit status 1 and one line saying what is wrong."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: "), result.output
    for text in expected:
        assert text in lines[-1], result.output


def _consumed(settings, group: str) -> bool:
    """Whether ``group`` has committed the end of every partition of the articles topic."""
    admin, reader = topics.admin(settings), bus.consumer(settings, None)
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
        ends = bus.end_offsets(reader, settings.topics.articles)
    finally:
        admin.close()
        reader.close()
    return all(committed.get(tp) is not None and committed[tp].offset >= end for tp, end in ends.items() if end)


def test_unknown_partners_and_numbers_exit_1_and_an_open_circuit_is_named(settings):
    server = PartnerServer([new_secret()], respond=lambda n, request: 500).start()
    register(settings, "flaky", server)
    rng = random.Random(3)
    try:
        for args in (["deliveries", "list", "--partner", "NOPE"], ["deliveries", "redrive", "--partner", "NOPE"],
                     ["deliveries", "kills", "--partner", "NOPE"], ["deliveries", "resend", "--partner", "NOPE",
                                                                   "--seq", "1"]):
            _failed(_run(settings, *args, ok=False), "no partner 'NOPE'")
        _failed(_run(settings, "deliveries", "resend", "--partner", "flaky", "--seq", "1", ok=False),
                "flaky has no deliveries numbered 1-1 (it has none yet)")

        with pusher.Running(settings, config(breaker_failures=3, breaker_cooldown_s=600)):
            publish(settings, [corpus.story(rng, f"op-{n}", body_bytes=200) for n in range(2)])
            wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries")[0][0] == 2
                     and query(settings, "SELECT count(*) FROM attempts")[0][0] >= 3, "three failed attempts")
            _failed(_run(settings, "deliveries", "resend", "--partner", "flaky", "--seq", "99999", ok=False),
                    "flaky has no deliveries numbered 99999-99999 (its numbers are 1-2)")
            _failed(_run(settings, "deliveries", "redrive", "--id", "424242", ok=False),
                    "no dead deliveries with id 424242")
            resent = _run(settings, "deliveries", "resend", "--partner", "flaky", "--seq", "1-2",
                          NEWSWIRE_WEBHOOK_BREAKER_FAILURES="3", NEWSWIRE_WEBHOOK_BREAKER_COOLDOWN="600")
        assert "flaky: resending 2 deliveries (1-2)" in resent.output
        opened = re.search(r"flaky: its circuit is OPEN \((\d+) failed attempts in a row", resent.output)
        assert opened and int(opened[1]) >= 3, resent.output  # (two articles in flight at once: 3 or 4)
        assert "the resend waits for the circuit" in resent.output
    finally:
        server.stop()


def test_a_partner_disabled_by_a_410_is_told_what_it_missed_and_the_backfill_sends_it(settings):
    server = PartnerServer([new_secret()], respond=lambda n, request: 410 if n == 1 else 200).start()
    register(settings, "comeback", server)
    rng = random.Random(9)
    first, missed_a, doomed, missed_b, later_a, later_b = (
        corpus.story(rng, f"cb-{name}", body_bytes=300) for name in ("first", "a", "doomed", "b", "c", "d"))
    kill = corpus.next_version(doomed, "killed")
    try:
        pushing = config()
        with pusher.Running(settings, pushing):
            publish(settings, [first])
            wait_for(lambda: not query(settings, "SELECT enabled FROM partners")[0][0], "the 410 disabling it")
            publish(settings, [missed_a, doomed, missed_b, kill])  # while it is disabled
            wait_for(lambda: _consumed(settings, pushing.group_id), "the pusher passing them by")

            enabled = _run(settings, "partners", "enable", "comeback")
            lines = enabled.output.strip().splitlines()
            assert lines[0].startswith("comeback: enabled (it was disabled: 410 Gone from")
            assert lines[1].startswith("comeback: MISSED 2 events (2 stories) published while disabled, from ")
            assert "1 more of stories killed or withdrawn since are not sent" in lines[1]
            command = lines[2].split("to send them: ", 1)[1].split("  (", 1)[0]
            assert command.startswith("newswire partners backfill comeback --since ") and "--missed-only" in command
            wait_for(lambda: len(server.ok()) == 1, "the delivery held while it was disabled")

            _run(settings, *command.split()[1:], "--no-progress")  # the command it printed
            wait_for(lambda: len(server.ok()) == 3, "the two missed stories")
            assert sorted(r.article[0] for r in server.ok()) == ["cb-a", "cb-b", "cb-first"]
            assert b"cb-doomed" not in b"".join(r.body for r in server.snapshot())

            disabled = _run(settings, "partners", "disable", "comeback", "--reason", "maintenance")
            assert "stories published meanwhile are NOT queued for it" in disabled.output
            publish(settings, [later_a, later_b])
            wait_for(lambda: _consumed(settings, pushing.group_id), "the pusher passing the two stories by")
            backfilled = _run(settings, "partners", "enable", "comeback", "--backfill")
            assert "comeback: MISSED 2 events (2 stories)" in backfilled.output
            assert "comeback: backfilling: newswire partners backfill comeback --since " in backfilled.output
            wait_for(lambda: len(server.ok()) == 5, "the two stories missed the second time")
        ok = server.ok()
        assert sorted(r.article[0] for r in ok[3:]) == ["cb-c", "cb-d"]
        assert sorted(r.seq for r in ok) == [1, 2, 3, 4, 5]  # nothing twice
        assert "comeback: already enabled" in _run(settings, "partners", "enable", "comeback").output
    finally:
        server.stop()


def test_the_status_readers_read_the_state_on_either_store(settings):
    """The status page's and gauges' queries (per-partner counts, health, kill report) run on
    both stores' SQL and count what the pusher did."""
    server = PartnerServer([new_secret()]).start()
    register(settings, "readers", server)
    rng = random.Random(3)
    story = corpus.story(rng, "rd-a", body_bytes=300)
    try:
        with pusher.Running(settings, config()):
            publish(settings, [story, corpus.next_version(story, "killed")])
            wait_for(lambda: len(server.ok()) == 2, "both versions")
        db = store.connect(settings)
        try:
            [state] = partner_state.partner_states(db, config())
            assert (state.partner, state.delivered, state.pending, state.dead, state.gaps, state.last_seq) == (
                "readers", 2, 0, 0, 0, 2)
            status = _run(settings, "deliveries", "status", "--json").stdout
            [summary] = [json.loads(line) for line in status.splitlines()]
            assert (summary["partner"], summary["delivered"], summary["last_seq"]) == ("readers", 2, 2)
            [health] = receipts.health(db)
            assert health["pending_retries"] == 0 and health["last_success"] is not None
            [kill] = receipts.kill_report(db)
            assert (kill["partner_id"], kill["status"]) == ("readers", "delivered")
        finally:
            db.close()
    finally:
        server.stop()
