"""A backfill never sends a killed story's text to a partner that did not have it, whatever the
window, from Kafka and from the archive (real broker, real signed HTTP posts)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from newswire import corpus
from newswire.consumers.webhooks import pusher
from tests.replay_support import produce
from tests.test_replay import _archive_all, _iso, _partner, _totals, cli
from tests.webhooks_support import config, wait_for

MIN = timedelta(minutes=1)


def _stories():
    rng = random.Random(17)
    doomed = corpus.story(rng, "kl-doomed", body_bytes=400)
    updated = corpus.next_version(doomed, "updated", body="A longer text of the doomed story, updated.")
    kill = corpus.next_version(updated, "killed")
    other = corpus.story(rng, "kl-other", body_bytes=400)
    later = corpus.story(rng, "kl-later", body_bytes=400)
    return doomed, updated, kill, other, later


def _texts(received) -> bytes:
    return b"".join(r.body for r in received)


@pytest.mark.parametrize("source", ["kafka", "archive"])
def test_a_backfill_after_a_kill_sends_a_new_partner_nothing_of_the_killed_story(settings, source):
    doomed, updated, kill, other, later = _stories()
    start = datetime.now(timezone.utc) - 30 * MIN
    stamps = produce(settings, [doomed, other, updated, kill, later], start=start, step=MIN)
    if source == "archive":
        _archive_all(settings, 5)
    before_kill = _iso(datetime.fromtimestamp((stamps[3] - 1) / 1000, timezone.utc))
    windows = {"whole": ["--since", "1d"], "until-before-the-kill": ["--since", "1d", "--until", before_kill]}
    servers = {name: _partner(settings, f"new-{name}") for name in windows}
    try:
        for name, window in windows.items():
            result = cli(settings, "partners", "backfill", f"new-{name}", "--source", source, *window,
                         "--send", "--no-progress")
            got = servers[name].ok()
            assert {r.article[0] for r in got} == ({"kl-other", "kl-later"} if name == "whole" else {"kl-other"})
            assert doomed["body"].encode() not in _texts(got) and b"kl-doomed" not in _texts(got)
            totals = _totals(result.output)
            assert totals["withheld: killed"] == 2  # versions 1 and 2: the story is killed now
            if name == "whole":
                assert totals["not for partner"] == 1  # the kill itself: the partner never had the story
    finally:
        for server in servers.values():
            server.stop()


def test_a_partner_that_had_the_story_gets_the_kill_instead_of_a_later_version(settings):
    doomed, updated, kill, _, _ = _stories()
    start = datetime.now(timezone.utc) - 30 * MIN
    server = _partner(settings, "had")
    try:
        with pusher.Running(settings, config()):
            produce(settings, [doomed], start=start)
            wait_for(lambda: len(server.ok()) == 1, "the live delivery of version 1")
        # the pusher is stopped: version 2 and the kill never reach the partner live
        stamps = produce(settings, [updated, kill], start=start + 10 * MIN, step=10 * MIN)
        before_kill = _iso(datetime.fromtimestamp((stamps[1] - 1) / 1000, timezone.utc))
        result = cli(settings, "partners", "backfill", "had", "--since", "1d", "--until", before_kill,
                     "--send", "--no-progress")
        # version 1 (which it had): the kill goes in its place; version 2 then comes after the kill
        assert _totals(result.output) == {"kill sent instead": 1, "superseded": 1}
        got = server.ok()
        assert [r.article for r in got] == [("kl-doomed", 1, "published"), ("kl-doomed", 3, "killed")]
        assert updated["body"].encode() not in _texts(got)  # version 2's text never went out
    finally:
        server.stop()
