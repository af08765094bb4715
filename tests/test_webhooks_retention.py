"""Retention of the webhook state (NEWSWIRE_WEBHOOK_KEEP): what was delivered long ago is
forgotten, and nothing a partner can still need goes with it: what was not delivered, its newest
version and kill of each article (an old story's kill still reaches it, an old version is never
sent after the newer one), gapless numbers. Real broker, real partner server, both stores."""

from __future__ import annotations

import random
import time

from newswire import corpus
from newswire.consumers.webhooks import outbox, pusher, store
from newswire.consumers.webhooks.signing import new_secret
from tests.conftest import on_each_store
from tests.webhooks_support import BODY, PartnerServer, cli, config, publish, query, register, wait_for

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def _story(article_id: str) -> dict:
    return corpus.story(random.Random(article_id), article_id, body_bytes=300)


def _kept(settings) -> list[tuple]:
    """Every delivery, by article and version (articles are on different partitions, so their
    numbers come in any order)."""
    return [tuple(r) for r in query(settings, "SELECT article_id, version, event_type, status, seq FROM deliveries"
                                              " ORDER BY article_id, version, seq")]


def _counts(settings) -> dict[str, int]:
    return {table: query(settings, f"SELECT count(*) FROM {table}")[0][0]
            for table in ("deliveries", "attempts", "bodies", "events")}


def test_pruning_forgets_old_deliveries_but_not_what_a_partner_still_needs(settings):
    a1, b1, c1, d1 = (_story(a) for a in ("ret-a", "ret-b", "ret-c", "ret-d"))
    a2, b_kill = corpus.next_version(a1, "updated"), corpus.next_version(b1, "killed")
    server = PartnerServer([new_secret()], lambda n, request: 500 if b"ret-c" in request[BODY] else 200).start()
    register(settings, "acme", server)
    try:
        with pusher.Running(settings, config(schedule=(0, 0.1))):
            publish(settings, [a1, a2, b1, b_kill, c1, d1])
            wait_for(lambda: len(server.ok()) == 5 and ("ret-c", 1, "published", "dead") in
                     [r[:4] for r in _kept(settings)], "5 delivered, c dead")
            before = _kept(settings)
            assert [(r[0], r[1], r[3]) for r in before] == [
                ("ret-a", 1, "delivered"), ("ret-a", 2, "delivered"), ("ret-b", 1, "delivered"),
                ("ret-b", 2, "delivered"), ("ret-c", 1, "dead"), ("ret-d", 1, "delivered")]
            db = store.connect(settings)
            try:
                states = outbox.article_states(db, "acme", ["ret-a", "ret-b", "ret-c", "ret-d"])
                attempts = _counts(settings)["attempts"]
                assert outbox.prune(db, time.time() - 3600) == outbox.Pruned()  # nothing is an hour old
                assert outbox.prune(db, time.time() + 1, dry_run=True) == outbox.Pruned(deliveries=2, attempts=attempts)
                pruned = outbox.prune(db, time.time() + 1, batch=1)  # one row per transaction: the batches add up
                assert pruned == outbox.Pruned(deliveries=2, attempts=attempts, bodies=2, events=2)
                assert outbox.article_states(db, "acme", ["ret-a", "ret-b", "ret-c", "ret-d"]) == states
            finally:
                db.close()
            # a1 (a2 is newer) and b1 (its kill is newer) are forgotten; the newest, the kill and the dead one stay
            assert _kept(settings) == [before[i] for i in (1, 3, 4, 5)]
            assert _counts(settings) == {"deliveries": 4, "attempts": 0, "bodies": 4, "events": 4}
            gaps = cli(settings, "deliveries", "gaps", "--partner", "acme", "--json").output
            assert gaps.count('"seq"') == 1 and f'"seq": {before[4][4]},' in gaps  # c's, the one gap

            # after the prune: an old version read again is still superseded, a new story takes the
            # next number, and an old story's kill reaches the partner that had it
            publish(settings, [a1, _story("ret-e"), corpus.next_version(d1, "killed")])
            wait_for(lambda: len(server.ok()) == 7, "e and d's kill delivered")
    finally:
        server.stop()
    after = {r[:3]: r[4] for r in _kept(settings)}
    assert {after[("ret-e", 1, "published")], after[("ret-d", 2, "killed")]} == {7, 8}
    assert sorted(r.seq for r in server.ok())[-2:] == [7, 8]
    assert query(settings, "SELECT count(*) FROM deliveries WHERE article_id = 'ret-a'")[0][0] == 1


def test_the_pusher_prunes_by_itself_and_the_command_says_what_it_did(settings):
    a1 = _story("own-a")
    server = PartnerServer([new_secret()]).start()
    register(settings, "acme", server)
    try:
        with pusher.Running(settings, config(keep_s=0.5, prune_every_s=0.2)):
            publish(settings, [a1, corpus.next_version(a1, "updated")])
            wait_for(lambda: len(server.ok()) == 2, "both versions delivered")
            wait_for(lambda: _counts(settings)["deliveries"] == 1 and _counts(settings)["attempts"] == 0,
                     "version 1 and the receipts pruned by the pusher")
    finally:
        server.stop()
    assert [r[1] for r in _kept(settings)] == [2]

    dry = cli(settings, "deliveries", "prune", "--keep", "0s", "--dry-run").output
    assert "would delete: 0 deliveries, 0 receipts" in dry
    refused = cli(settings, "deliveries", "prune", "--keep", "ninety days", ok=False)
    assert refused.exit_code == 2 and "is not a duration" in refused.output
    forever = cli(settings, "deliveries", "prune", env={"NEWSWIRE_WEBHOOK_KEEP": "forever"}, ok=False)
    assert forever.exit_code == 1 and "nothing is pruned" in forever.output
