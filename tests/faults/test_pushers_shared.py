"""Three pushers (`newswire webhooks run`, real processes) share one PostgreSQL state; one of
them is SIGKILLed in the middle of a stream. Afterwards every delivery is checked at every
partner: each sequence number exactly once (or twice, where the first attempt was never
recorded: the at-least-once retry), in order per article, nothing after a kill, every
signature valid, and the killed pusher's partners taken over by the other two. A pusher that
joins mid-stream takes half the partners with nothing sent twice; one whose database goes away
ends in one line."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import replace

from newswire import bus, corpus
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import PartnerServer, env_of, failure_line, query, register, wait_for

PUSHERS = 3
PARTNERS = 6
ARTICLES = 12
LEASE_S = 2


def _pusher(settings, log_path) -> subprocess.Popen:
    env = {**os.environ, **env_of(settings, NEWSWIRE_WEBHOOK_GROUP=f"webhooks-{settings.topics.articles}",
                                  NEWSWIRE_WEBHOOK_SCHEDULE="0,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
                                  NEWSWIRE_WEBHOOK_JITTER="0", NEWSWIRE_WEBHOOK_TIMEOUT="3",
                                  NEWSWIRE_WEBHOOK_ALLOW_CIDRS="127.0.0.0/8", NEWSWIRE_WEBHOOK_POLL="0.2",
                                  NEWSWIRE_WEBHOOK_BREAKER_FAILURES="1000", NEWSWIRE_WEBHOOK_LEASE=str(LEASE_S))}
    return subprocess.Popen([sys.executable, "-m", "newswire.cli", "--log-level", "INFO", "webhooks", "run"],
                            env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


def _stream() -> list[dict]:
    """Versions 1-3 of each article, every fourth article killed after them, interleaved."""
    rng = random.Random(11)
    chains = []
    for i in range(ARTICLES):
        versions = [corpus.story(rng, f"s-{i}", body_bytes=400)]
        for _ in range(2):
            versions.append(corpus.next_version(versions[-1], "updated"))
        if i % 4 == 0:
            versions.append(corpus.next_version(versions[-1], "killed"))
        chains.append(versions)
    events = []
    while any(chains):
        for chain in chains:
            if chain:
                events.append(chain.pop(0))
    return events


def _publish_slowly(settings, events: list[dict], every_s: float = 0.05,
                    halfway: threading.Event | None = None) -> None:
    """Publish the events one by one; with ``halfway``, wait for it after the first half."""
    kafka = bus.producer(settings)
    try:
        for n, event in enumerate(events):
            if halfway is not None and n == len(events) // 2:
                assert halfway.wait(180), "the second half was never let go"
            bus.publish_events(settings, kafka, [event])
            time.sleep(every_s)
    finally:
        kafka.close()


def _owners(settings) -> dict[int, set[str]]:
    """pusher pid → the partners it holds an unexpired lease of."""
    owners: dict[int, set[str]] = defaultdict(set)
    for pid, partner in query(settings, "SELECT p.pid, l.partner_id FROM partner_leases l JOIN pushers p"
                                        " ON p.id = l.owner WHERE l.expires_at > extract(epoch FROM now())"):
        owners[pid].add(partner)
    return owners


def test_kill_9_of_one_of_three_pushers_sharing_postgresql_loses_and_reorders_nothing(settings, postgres_server,
                                                                                      tmp_path):
    settings = replace(settings, state_url=postgres_server.new_database())
    # a partner answers 500 to every fifth request: retries are part of the stream
    servers = [PartnerServer([new_secret()], respond=lambda n, r: 500 if n % 5 == 0 else 200).start()
               for _ in range(PARTNERS)]
    for n, server in enumerate(servers):
        register(settings, f"p{n}", server, concurrency=1 + n % 3)
    events = _stream()
    logs = [tmp_path / f"pusher-{n}.log" for n in range(PUSHERS)]
    processes = [_pusher(settings, log) for log in logs]
    try:
        wait_for(lambda: len(_owners(settings)) == PUSHERS and sum(map(len, _owners(settings).values())) == PARTNERS,
                 "the partners shared by the three pushers", timeout_s=60)
        publisher = threading.Thread(target=_publish_slowly, args=(settings, events))
        publisher.start()
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
                 >= PARTNERS * len(events) // 4, "a quarter of the stream delivered", timeout_s=90)
        victim_pid, victim_partners = max(_owners(settings).items(), key=lambda item: len(item[1]))
        victim = next(p for p in processes if p.pid == victim_pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        publisher.join(120)
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
                 == PARTNERS * len(events), "every delivery, after the kill", timeout_s=120, every_s=0.2)
        survivors = _owners(settings)
        assert victim_pid not in survivors and set().union(*survivors.values()) == {f"p{n}" for n in range(PARTNERS)}
    finally:
        _stop(processes, servers)
    for process, log in zip(processes, logs):
        if process.pid != victim_pid:
            assert process.returncode == 0, log.read_text()[-3000:]
    assert victim_partners, "the killed pusher held partners"
    _every_delivery_checked(settings, servers, events, may_repeat=victim_partners)


def _stop(processes: list[subprocess.Popen], servers: list[PartnerServer]) -> None:
    """SIGTERM to the pushers still running, then the partners' servers stopped."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(30)
    for server in servers:
        server.stop()


def _every_delivery_checked(settings, servers, events: list[dict], *, may_repeat: set[str]) -> None:
    """Each partner has every sequence number (twice only where an attempt was never recorded,
    and only for a partner in ``may_repeat``), in order per article, nothing after a kill."""
    expected = Counter(e["article_id"] for e in events)
    for n, server in enumerate(servers):
        partner = f"p{n}"
        got = server.snapshot()
        assert got and all(r.verified for r in got), partner
        delivered = [r for r in got if r.answered == 200]
        # every number once ...
        assert sorted(set(r.seq for r in delivered)) == list(range(1, len(events) + 1)), partner
        # ... or twice where an attempt was sent and never recorded (the at-least-once retry)
        recorded = dict(query(settings, "SELECT d.seq, count(a.id) FROM deliveries d LEFT JOIN attempts a"
                                        " ON a.delivery_id = d.id WHERE d.partner_id = ? GROUP BY d.seq", partner))
        sent = Counter(r.seq for r in got)
        for seq, times in Counter(r.seq for r in delivered).items():
            if times > 1:
                assert sent[seq] > recorded[seq], (partner, seq, sent[seq], recorded[seq])
                assert partner in may_repeat, (partner, seq)
        assert all(len({r.webhook_id for r in got if r.seq == seq}) == 1 for seq in sent), partner
        # in order per article, nothing after its kill, each article complete
        versions = defaultdict(list)
        for r in delivered:
            versions[r.article[0]].append(r.article[1:])
        for article_id, seen in versions.items():
            numbers = [v for v, _ in seen]
            assert numbers == sorted(numbers), (partner, article_id, numbers)
            assert sorted(set(numbers)) == list(range(1, expected[article_id] + 1)), (partner, article_id)
            kinds = [kind for _, kind in seen]
            if "killed" in kinds:
                assert set(kinds[kinds.index("killed"):]) == {"killed"}, (partner, article_id, kinds)
        assert set(versions) == set(expected)
    state = query(settings, "SELECT id, next_seq FROM partners ORDER BY id")
    assert [tuple(r) for r in state] == [(f"p{n}", len(events) + 1) for n in range(PARTNERS)]


def test_a_pusher_joining_in_the_middle_of_a_stream_takes_half_the_partners_and_nothing_is_sent_twice(
        settings, postgres_server, tmp_path):
    """The first pusher holds every partner; a second one starts while the stream goes on: the
    first hands half over, each only after its attempts in flight are recorded, so no number
    reaches a partner twice."""
    settings = replace(settings, state_url=postgres_server.new_database())
    servers = [PartnerServer([new_secret()]).start() for _ in range(PARTNERS)]
    for n, server in enumerate(servers):
        register(settings, f"p{n}", server, concurrency=1 + n % 3)
    events = _stream()
    logs = [tmp_path / f"pusher-{n}.log" for n in range(2)]
    processes = [_pusher(settings, logs[0])]
    # the second half of the stream waits for the second pusher to hold its half of the partners
    shared = threading.Event()
    publisher = threading.Thread(target=_publish_slowly, args=(settings, events, 0.05, shared))
    try:
        wait_for(lambda: sum(map(len, _owners(settings).values())) == PARTNERS, "the first pusher's leases",
                 timeout_s=60)
        publisher.start()
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
                 >= PARTNERS * len(events) // 4, "a quarter of the stream delivered", timeout_s=90)
        processes.append(_pusher(settings, logs[1]))
        wait_for(lambda: sorted(map(len, _owners(settings).values())) == [PARTNERS // 2, PARTNERS // 2],
                 "the partners shared by the two pushers", timeout_s=60)
        shared.set()
        publisher.join(120)
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
                 == PARTNERS * len(events), "every delivery", timeout_s=120, every_s=0.2)
    finally:
        shared.set()
        if publisher.is_alive():
            publisher.join(120)
        _stop(processes, servers)
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log.read_text()[-3000:]
    assert '"partner_handed_over"' in logs[0].read_text()
    assert '"delivery_delivered"' in logs[1].read_text()  # the second pusher sent its half of the rest
    _every_delivery_checked(settings, servers, events, may_repeat=set())


def test_a_pusher_whose_database_goes_away_ends_in_one_line_for_its_supervisor(settings, postgres_server, tmp_path):
    settings = replace(settings, state_url=postgres_server.new_database())
    server = PartnerServer([new_secret()]).start()
    register(settings, "p0", server)
    log = tmp_path / "pusher.log"
    process = _pusher(settings, log)
    try:
        wait_for(lambda: _owners(settings), "the pusher holding its partner", timeout_s=60)
        database = settings.state_url.rsplit("/", 1)[1]
        query(settings, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ?"
                        " AND pid != pg_backend_pid()", database)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
        server.stop()
    last = failure_line(code, log)
    assert last.startswith("Error: the pusher stopped: ") and "webhook state" in last, last
