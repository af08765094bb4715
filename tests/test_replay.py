"""newswire replay against the real broker: window edges, group resets, partner-only replays
(with real signed HTTP posts), archive source = Kafka source, idempotence, resumption."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from types import SimpleNamespace

from newswire import bus, codec, corpus, topics
from newswire.consumers.archive.archiver import default_root
from newswire.consumers.archive.archiver import event_loop as archive_loop
from newswire.consumers.archive.reader import ArchiveReader
from newswire.consumers.replay.readahead import Prerender, ReadAhead
from newswire.consumers.webhooks.payloads import kept_renders
from newswire.consumers.replay.sources import ArchiveSource, Item, KafkaSource
from newswire.consumers.replay.targets import PartnerTarget
from newswire.consumers.replay.window import Window
from newswire.consumers.webhooks import outbox, pusher, store
from newswire.consumers.webhooks.filters import History, Subscription, decide
from newswire.consumers.webhooks.signing import new_secret
from newswire.formats.kept import Renders
from newswire.events import routing
from tests.conftest import on_both_stores
from tests.replay_support import NEWSWIRE, T0, cli_env, events, own_group, produce
from tests.topic_reader import read_events
from tests.webhooks_support import PartnerServer, config, publish, query, register, wait_for
from tests.webhooks_support import cli as webhooks_cli

MIN = timedelta(minutes=1)
LOOPBACK_PARTNERS = {"NEWSWIRE_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8"}


def cli(settings, *args, ok: bool = True):
    return webhooks_cli(settings, *args, env=LOOPBACK_PARTNERS, ok=ok)


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _archive_all(settings, expected: int) -> None:
    loop, archiver = archive_loop(settings, instance_id=None, group_id=own_group(settings, "archive"))
    for _ in range(60):
        if archiver.archived + archiver.duplicates >= expected:
            break
        loop.poll_once(timeout_ms=500)
    loop.close()
    archiver.close()


def _committed(settings) -> dict:
    """Every consumer group's committed offsets on the test's topic."""
    admin = topics.admin(settings)
    try:
        groups = [g["group_id"] for g in admin.list_groups()]
        offsets = admin.list_group_offsets({g: None for g in groups}) if groups else {}
    finally:
        admin.close()
    return {g: {(tp.partition, om.offset) for tp, om in o.items() if tp.topic == settings.topics.articles}
            for g, o in offsets.items()}


def _consume(settings, group: str, expected: int) -> bus.EventLoop:
    seen = []
    loop = bus.EventLoop(settings, group, lambda d: seen.append(d.event["event_id"]))
    for _ in range(60):
        if len(seen) >= expected:
            break
        loop.poll_once(timeout_ms=500)
    loop.seen = seen
    return loop


def test_window_edges_give_exact_counts_from_kafka_and_from_the_archive(settings):
    items = events(40)
    produce(settings, items, start=T0, step=MIN, v1_every=6)
    _archive_all(settings, 40)
    cases = {  # [since, until) over timestamps T0 + i minutes
        (T0 + 10 * MIN, T0 + 20 * MIN): items[10:20],
        (T0 + 10 * MIN - timedelta(milliseconds=1), T0 + 20 * MIN + timedelta(milliseconds=1)): items[10:21],
        (T0 + 10 * MIN + timedelta(milliseconds=1), T0 + 20 * MIN): items[11:20],
        (None, T0 + 5 * MIN): items[:5],
        (T0 + 35 * MIN, None): items[35:],
        (T0 + 50 * MIN, None): [],
    }
    for (since, until), expected in cases.items():
        window = Window.of(since, until)
        kafka = KafkaSource(settings, window)
        archive = ArchiveSource(settings, window, default_root(settings))
        try:
            from_kafka = {(i.partition, i.offset): i for i in kafka.items({})}
            from_archive = {(i.partition, i.offset): i for i in archive.items({})}
            assert sum(kafka.counts({}).values()) == sum(archive.counts({}).values()) == len(expected)
            assert from_kafka.keys() == from_archive.keys()
            for position, item in from_archive.items():  # the very bytes Kafka holds (v1 ones too)
                assert item.payload == from_kafka[position].payload
                assert item.event == from_kafka[position].event
        finally:
            kafka.close()
            archive.close()
        assert sorted(i.event["event_id"] for i in from_kafka.values()) == sorted(e["event_id"] for e in expected)


def test_read_ahead_gives_the_sources_items_in_their_order_each_rendered_as_the_target_would(settings):
    items = events(30)
    produce(settings, items, start=T0, step=MIN, v1_every=6)
    _archive_all(settings, 30)
    prerender = Prerender("ninjs", settings.authority())
    for make in (partial(KafkaSource, settings, Window()),
                 partial(ArchiveSource, settings, Window(), default_root(settings))):
        plain, ahead = make(), ReadAhead(make, prerender)
        try:
            resume = {0: 2}  # from a checkpoint: partition 0 from its third event
            expected, got = list(plain.items(resume)), list(ahead.items(resume))
            assert ahead.counts(resume) == plain.counts(resume) and len(got) == sum(plain.counts(resume).values())
            assert [(i.partition, i.offset, i.payload, i.event) for i in got] == \
                [(i.partition, i.offset, i.payload, routing(i.event)) for i in expected]  # rendered: its routing
            renders = Renders(settings.authority())
            for item, read in zip(got, expected):
                assert item.rendered == {"ninjs": prerender.parts(renders, read)}
            assert ahead.cpu_s > 0
        finally:
            plain.close()
            ahead.close()


def test_a_second_replay_in_a_format_uses_the_renders_the_first_kept(settings):
    items = events(12)
    produce(settings, items, start=T0, step=MIN)
    prerender = Prerender("ninjs", settings.authority(), kept_renders(settings))
    runs = []
    for _ in range(2):  # a backfill of one partner, then another's in the same format
        ahead = ReadAhead(partial(KafkaSource, settings, Window()), prerender)
        try:
            runs.append([(i.offset, i.rendered) for i in ahead.items({})])
        finally:
            ahead.close()
        runs[-1].append(ahead.rendered)
    first, second = runs
    assert first[-1] == (12, 0) and second[-1] == (0, 12)  # (rendered, kept ones used)
    assert second[:-1] == first[:-1] and all(rendered["ninjs"] for _, rendered in first[:-1])
    assert kept_renders(settings).is_file()


def test_a_backfill_uses_the_renders_the_live_pushes_kept(settings):
    items = events(6)
    produce(settings, items, start=T0, step=MIN)
    _partner(settings, "acme").stop()  # only the outbox is looked at: a partner for the live path to queue for
    live = outbox.Enqueuer(settings)  # the pusher's Kafka side, queueing the events as they were published
    for item in KafkaSource(settings, Window()).items({}):
        live.handle(bus.Delivery(item.event, SimpleNamespace(value=item.payload)))
    live.commit()
    live.close()
    prerender = Prerender("ninjs", settings.authority(), kept_renders(settings))  # a new partner's backfill
    ahead = ReadAhead(partial(KafkaSource, settings, Window()), prerender)
    try:
        got = list(ahead.items({}))
    finally:
        ahead.close()
    assert ahead.rendered == (0, 6)  # (rendered, kept ones used)
    queued = {row[0]: (row[1], row[2]) for row in query(
        settings, "SELECT d.event_id, b.head, b.tail FROM deliveries d JOIN bodies b ON b.id = d.body_id"
                  " WHERE d.partner_id = 'acme'")}
    assert len(queued) == 6
    assert {str(i.event["event_id"]): i.rendered["ninjs"] for i in got} == queued  # the very bytes


def test_a_group_reset_is_refused_while_active_shown_in_a_dry_run_and_applied_when_inactive(settings):
    items = events(30)
    produce(settings, items, start=T0, step=MIN)
    group = "newswire-feeds"
    loop = _consume(settings, group, 30)  # a live member of the group, at the end of the log
    before = _committed(settings)[group]
    since = _iso(T0 + 12 * MIN)

    dry = cli(settings, "replay", "--group", group, "--since", since, "--dry-run")
    lines = dry.output.splitlines()
    assert lines[0].split() == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET", "LOG-END-OFFSET",
                                "TO-REPLAY"]
    rows = [line.split() for line in lines[1:4]]
    assert sum(int(r[3]) for r in rows) == 30 and sum(int(r[6]) for r in rows) == 18
    assert "1 active members" in dry.output and "nothing changed" in dry.output

    refused = cli(settings, "replay", "--group", group, "--since", since, "--execute", ok=False)
    assert refused.exit_code == 1 and "refused" in refused.output and "active member" in refused.output
    assert _committed(settings)[group] == before

    loop.close()  # the group's consumer stops: the reset goes through
    plan_only = cli(settings, "replay", "--group", group, "--since", since)  # no --execute: the plan only
    assert "would re-read 18 events; nothing changed (--execute resets it)" in plan_only.output
    assert _committed(settings)[group] == before
    applied = cli(settings, "replay", "--group", group, "--since", since, "--execute")
    assert "re-read 18 events" in applied.output
    again = _consume(settings, group, 18)
    again.close()
    assert sorted(again.seen) == sorted(e["event_id"] for e in items[12:])

    until = cli(settings, "replay", "--group", group, "--since", since, "--until", "1h", ok=False)
    assert until.exit_code == 2 and "--until needs --partner" in until.output


def test_replaying_the_archive_group_twice_changes_nothing_in_the_archive(settings):
    items = events(25)
    produce(settings, items, start=T0, step=MIN)
    _archive_all(settings, 25)
    with ArchiveReader(default_root(settings)) as reader:
        before = [(e.event_id, e.segment, e.block_offset) for e in reader.entries()]
    for _ in range(2):
        cli(settings, "replay", "--group", own_group(settings, "archive"), "--since", _iso(T0), "--execute")
        _archive_all(settings, 25)
    with ArchiveReader(default_root(settings)) as reader:
        assert [(e.event_id, e.segment, e.block_offset) for e in reader.entries()] == before
        assert reader.verify() == (25, [])


def _new_partner_gets(items, log=None) -> set[str]:
    """The event ids a new partner subscribed to everything is sent, by the webhooks' own rule,
    of ``items`` (a window of ``log``, by default all of it): nothing of an article killed or
    withdrawn anywhere in ``log``."""
    ended = {e["article_id"] for e in (items if log is None else log) if e["event_type"] in ("killed", "withdrawn")}
    history: dict[str, History] = {}
    wanted = set()
    for event in items:
        if event["article_id"] not in ended and decide(Subscription(), event, history.get(event["article_id"], History()), enabled=True,
                  now=datetime.now(timezone.utc)).deliver:
            wanted.add(event["event_id"])
            history[event["article_id"]] = History(event["version"], event["event_type"] == "killed")
    return wanted


def _partner(settings, partner_id):
    server = PartnerServer([new_secret()]).start()
    register(settings, partner_id, server)
    return server


def _totals(output: str) -> dict[str, int]:
    """The summary's ``total:`` line as outcome → count."""
    line = next(line for line in output.splitlines() if line.strip().startswith("total:"))
    return {label: int(count) for label, count in
            (part.strip().rsplit(" ", 1) for part in line.split(":", 1)[1].split(","))}


def _without_sequence(received) -> dict:
    envelope = received.envelope
    del envelope["sequence"]
    return envelope


@on_both_stores
def test_a_partner_only_replay_moves_no_group_and_sends_the_newest_versions_again_under_new_numbers(settings):
    items = events(40)
    produce(settings, items, start=T0, step=MIN)
    _archive_all(settings, 40)
    _consume(settings, "newswire-feeds", 40).close()
    server = _partner(settings, "acme")
    try:
        before = _committed(settings)
        window = ["--since", _iso(T0 + 5 * MIN), "--until", _iso(T0 + 30 * MIN)]
        first = cli(settings, "replay", "--partner", "acme", *window, "--send", "--no-progress")
        assert _committed(settings) == before  # no group moved, and no group was created
        got = server.ok()
        assert all(r.verified for r in got)
        ids = [r.webhook_id for r in got]
        assert len(ids) == len(set(ids))
        assert set(ids) == _new_partner_gets(items[5:30], items)
        assert f"queued {len(ids)}" in first.output

        assert sorted(r.seq for r in got) == list(range(1, len(got) + 1))

        # the same window again: the partner has every event of it; it gets the newest version of
        # each article once more, under new numbers, with the original webhook-ids and content
        newest = {}
        for r in got:
            article_id, version, _ = r.article
            if version > newest.get(article_id, (0, None))[0]:
                newest[article_id] = (version, r)
        assert len(newest) < len(got)  # the window holds several versions of some articles
        second = cli(settings, "partners", "backfill", "acme", *window, "--send", "--no-progress")
        totals = _totals(second.output)
        assert totals["re-sent"] == len(newest) and totals["superseded"] == len(got) - len(newest)
        assert "queued" not in totals and "pending" not in totals
        again = server.ok()[len(got):]
        assert sorted(r.seq for r in again) == list(range(len(got) + 1, len(got) + len(newest) + 1))
        assert all(r.verified for r in again)
        assert {r.webhook_id: _without_sequence(r) for r in again} == {
            r.webhook_id: _without_sequence(r) for _, r in newest.values()}  # the partner can de-duplicate
        assert _committed(settings) == before
    finally:
        server.stop()


def test_replay_from_the_archive_sends_what_replay_from_kafka_sends(settings):
    items = events(60, seed=4)
    produce(settings, items, start=T0, step=MIN, v1_every=4)
    _archive_all(settings, 60)
    servers = {name: _partner(settings, name) for name in ("from-kafka", "from-archive")}
    try:
        window = ["--since", _iso(T0 + 3 * MIN), "--until", _iso(T0 + 50 * MIN), "--send", "--no-progress"]
        cli(settings, "replay", "--partner", "from-kafka", *window)
        cli(settings, "replay", "--partner", "from-archive", "--source", "archive", *window)
        kafka, archive = (sorted(servers[n].ok(), key=lambda r: r.seq) for n in ("from-kafka", "from-archive"))
        assert len(kafka) > 30
        # the same posts, byte for byte; only the signing time differs (normalised away)
        assert [(r.webhook_id, r.seq, r.body) for r in kafka] == [(r.webhook_id, r.seq, r.body) for r in archive]
        for r in archive:
            assert r.verified
            assert r.envelope["data"]["version"]  # a ninjs envelope
    finally:
        for server in servers.values():
            server.stop()


def test_dry_run_counts_per_partition_and_changes_nothing(settings):
    items = events(30)
    produce(settings, items, start=T0, step=MIN)
    server = _partner(settings, "acme")
    try:
        result = cli(settings, "replay", "--partner", "acme", "--since", _iso(T0 + 10 * MIN), "--dry-run",
                     "--no-progress")
        assert result.output.startswith("would replay 20 events from kafka to partner acme")
        per_partition = [line for line in result.output.splitlines() if line.strip().startswith("partition")]
        assert len(per_partition) == 3
        assert sum(int(line.split(":")[1].split()[0]) for line in per_partition) == 20
        time.sleep(0.5)
        assert server.ok() == []
        assert not (settings.home / "replay").exists()  # a dry run leaves no checkpoint
    finally:
        server.stop()


@on_both_stores
def test_an_interrupted_replay_resumes_from_its_checkpoint_and_sends_nothing_twice(settings, tmp_path):
    items = events(400, body_bytes=400)
    produce(settings, items, start=T0, step=timedelta(seconds=10))
    server = _partner(settings, "acme")
    first = None
    try:
        # a duration: the resumed run must find its checkpoint and replay the window of the first run
        args = [*NEWSWIRE, "replay", "--partner", "acme", "--since", "30d", "--send", "--no-progress"]
        first = subprocess.Popen([*args, "--rate", "50"], env=cli_env(settings), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        wait_for(lambda: len(server.ok()) >= 40, "the first run to deliver 40 events", 60)
        first.send_signal(signal.SIGINT)
        out, _ = first.communicate(timeout=60)
        assert first.returncode == 130, out.decode()
        assert "INTERRUPTED after" in out.decode()
        checkpoint = json.loads(next((settings.home / "replay").glob("*.json")).read_text())
        done_first = sum(checkpoint["next"].values())
        assert 40 <= done_first < 400
        sent_first = len(server.ok())

        second = subprocess.run(args, env=cli_env(settings), capture_output=True, timeout=120)
        text = second.stdout.decode()
        assert second.returncode == 0, text + second.stderr.decode()
        assert "resumed from a checkpoint" in text
        ids = [r.webhook_id for r in server.ok()]
        assert len(ids) == len(set(ids))  # nothing twice
        assert len(ids) > sent_first
        assert set(ids) == _new_partner_gets(items)
        assert not list((settings.home / "replay").glob("*.json"))  # done: the checkpoint is gone
    finally:
        if first is not None and first.poll() is None:  # a failed assertion must not leave it running
            first.kill()
            first.wait()
        server.stop()


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started that are running (not zombies)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_replay_killed_with_9_takes_its_processes_with_it_and_its_rerun_sends_the_rest(settings):
    items = events(400, body_bytes=400)
    produce(settings, items, start=T0, step=timedelta(seconds=10))
    offsets = {e["event_id"]: (r.partition, r.offset) for e, r in read_events(settings)}
    server = _partner(settings, "acme")
    args = [*NEWSWIRE, "replay", "--partner", "acme", "--since", "30d", "--send", "--no-progress"]
    first = subprocess.Popen([*args, "--rate", "50"], env=cli_env(settings), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(server.ok()) >= 40, "the first run to deliver 40 events", 60)
        children = _children(first.pid)
        assert len(children) >= 2  # its sender and its reading process (and multiprocessing's tracker)
        first.kill()
        first.wait(10)
        wait_for(lambda: not any(_running(pid) for pid in children), "the replay's processes to end with it", 10)
        checkpoint = json.loads(next((settings.home / "replay").glob("*.json")).read_text())
        resume = {int(p): o for p, o in checkpoint["next"].items()}
        assert 0 < sum(resume.values()) < 400

        second = subprocess.run(args, env=cli_env(settings), capture_output=True, timeout=120)
        assert second.returncode == 0, second.stdout.decode() + second.stderr.decode()
        assert "resumed from a checkpoint" in second.stdout.decode()
        received = server.ok()
        ids = [r.webhook_id for r in received]
        assert set(ids) == _new_partner_gets(items)  # nothing lost
        # sent twice: only what the kill caught between the last checkpoint and the kill
        twice = {i for i in ids if ids.count(i) > 1}
        assert all(offsets[i][1] >= resume.get(offsets[i][0], 0) for i in twice)
        numbers: dict[int, set[str]] = {}
        for r in received:
            numbers.setdefault(r.seq, set()).add(r.webhook_id)
        assert sorted(numbers) == list(range(1, max(numbers) + 1))  # gapless
        assert all(len(webhook_ids) == 1 for webhook_ids in numbers.values())  # a number is one event
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        server.stop()


def test_a_replay_from_a_damaged_archive_names_the_file_and_replays_the_rest(settings):
    items = events(30)
    produce(settings, items[:15], start=T0, step=MIN)
    _archive_all(settings, 15)  # two runs: two segments, so one damaged block is not the whole archive
    produce(settings, items[15:], start=T0 + 15 * MIN, step=MIN)
    _archive_all(settings, 15)
    root = default_root(settings)
    with ArchiveReader(root) as reader:
        entries = list(reader.entries())
    damaged = entries[0]
    lost = [e for e in entries if (e.segment, e.block_offset) == (damaged.segment, damaged.block_offset)]
    assert 0 < len(lost) < 30
    data = bytearray((root / damaged.segment).read_bytes())
    for i in range(damaged.block_offset + 6, damaged.block_offset + 30):
        data[i] ^= 0x5A
    (root / damaged.segment).write_bytes(bytes(data))
    server = _partner(settings, "acme")
    try:
        result = cli(settings, "replay", "--partner", "acme", "--source", "archive", "--since", _iso(T0),
                     "--send", "--no-progress")
        assert f"replayed {30 - len(lost)} events from archive" in result.output
        problems = [line for line in result.output.splitlines() if line.startswith("PROBLEM")]
        assert len(problems) == len(lost) and all(damaged.segment in p for p in problems)
        assert {r.webhook_id for r in server.ok()} == _new_partner_gets(
            [e for e in items if e["event_id"] not in {x.event_id for x in lost}], items)
    finally:
        server.stop()


@on_both_stores
def test_a_batch_is_renumbered_when_the_pusher_queued_for_the_partner_meanwhile(settings):
    server = _partner(settings, "acme")
    server.stop()  # nothing is sent in this test: only the outbox is looked at
    items = [Item(0, n, 0, codec.decode(codec.encode(e)), codec.encode(e)) for n, e in enumerate(events(5, seed=9))]
    target = PartnerTarget(settings, "acme")
    assert [target.offer(i) for i in items] == ["queued"] * 5
    db = store.connect(settings)
    db.execute("UPDATE partners SET next_seq = 40 WHERE id = 'acme'")  # the pusher took 1..39 meanwhile
    target.commit()
    rows = db.execute("SELECT seq, id FROM deliveries WHERE partner_id = 'acme' ORDER BY seq").fetchall()
    assert [seq for seq, _ in rows] == [40, 41, 42, 43, 44]
    assert [json.loads(outbox.payload(db, i))["sequence"] for _, i in rows] == [40, 41, 42, 43, 44]
    assert db.execute("SELECT next_seq FROM partners WHERE id = 'acme'").fetchone()[0] == 45
    db.close()
    target.close()


def test_events_kafka_no_longer_holds_are_replayed_from_the_archive(settings):
    items = events(24)
    produce(settings, items, start=T0, step=MIN)
    _archive_all(settings, 24)
    reader = bus.consumer(settings, None)
    ends = bus.end_offsets(reader, settings.topics.articles)
    reader.close()
    admin = topics.admin(settings)
    try:
        admin.delete_records(ends)  # retention has passed: Kafka holds none of them any more
    finally:
        admin.close()
    server = _partner(settings, "acme")
    try:
        from_kafka = cli(settings, "replay", "--partner", "acme", "--since", _iso(T0), "--dry-run", "--no-progress")
        assert from_kafka.output.startswith("would replay 0 events from kafka")
        cli(settings, "replay", "--partner", "acme", "--since", _iso(T0), "--source", "archive", "--send",
            "--no-progress")
        assert {r.webhook_id for r in server.ok()} == _new_partner_gets(items)
    finally:
        server.stop()


def _lines(settings, *args) -> list[str]:
    return cli(settings, *args).output.strip().splitlines()


@on_both_stores
def test_a_replay_resends_the_newest_version_under_new_numbers_after_the_live_ones_and_nothing_after_a_kill(
        settings):
    rng = random.Random(5)
    story = corpus.story(rng, "rp-story", body_bytes=400)
    v2 = corpus.next_version(story, "updated")
    v3 = corpus.next_version(v2, "corrected")
    other = corpus.story(rng, "rp-other", body_bytes=400)
    doomed = corpus.story(rng, "rp-doomed", body_bytes=400)
    kill = corpus.next_version(doomed, "killed")
    after_kill = corpus.next_version(kill, "updated")  # a broken producer's version after the kill
    server = _partner(settings, "lost")
    pushing = config()
    try:
        with pusher.Running(settings, pushing):
            publish(settings, [story, v2, v3, other, doomed, kill, after_kill])
            wait_for(lambda: len(server.ok()) == 6, "six live deliveries")
        live = server.ok()
        assert sorted(r.seq for r in live) == list(range(1, 7))
        first_of = {r.webhook_id: r for r in live}
        assert after_kill["event_id"] not in first_of

        # the partner lost them all: replay everything (versions 1..3 of rp-story, the kill, ...)
        result = cli(settings, "replay", "--partner", "lost", "--send", "--no-progress")
        assert _totals(result.output) == {"re-sent": 3, "superseded": 4}
        again = server.ok()[6:]
        assert [r.seq for r in sorted(again, key=lambda r: r.seq)] == [7, 8, 9]  # new, gapless, after the live ones
        assert {r.webhook_id for r in again} == {v3["event_id"], other["event_id"], kill["event_id"]}
        for r in again:  # the original webhook-id and content, only the number is new
            assert r.verified
            assert r.envelope["sequence"] == r.seq != first_of[r.webhook_id].seq
            assert _without_sequence(r) == _without_sequence(first_of[r.webhook_id])
        assert [r.article for r in again if r.article[0] == "rp-doomed"] == [("rp-doomed", 2, "killed")]

        assert _lines(settings, "deliveries", "gaps", "--partner", "lost") == [
            "seq\tarticle\tversion\tevent_type\tstatus\ttries\tlast_error", "0 unacknowledged"]
        kills = _lines(settings, "deliveries", "kills", "--partner", "lost")
        assert len(kills) == 3  # one row per kill, replayed or not: its first delivery that reached the partner
        assert kills[1].split("\t")[:5] == ["lost", "rp-doomed", "2", str(first_of[kill["event_id"]].seq), "yes"]
        assert kills[-1] == "1 kill deliveries, 0 not delivered"

        # a resend by number keeps the original number, webhook-id and body
        assert "resending 1 deliveries (2-2)" in cli(settings, "deliveries", "resend", "--partner", "lost",
                                                    "--seq", "2").output
        with pusher.Running(settings, pushing):
            wait_for(lambda: len(server.ok()) == 10, "the resent delivery")
        resent = server.ok()[-1]
        original = next(r for r in live if r.seq == 2)
        assert (resent.seq, resent.webhook_id, resent.body) == (2, original.webhook_id, original.body)
        assert resent.verified
        assert query(settings, "SELECT next_seq FROM partners WHERE id = 'lost'")[0][0] == 10
    finally:
        server.stop()


@on_both_stores
def test_a_replay_sends_a_dead_delivery_under_a_new_number_and_gaps_still_lists_the_old_one(settings):
    accept = {"2": False}
    server = PartnerServer([new_secret()], respond=lambda n, r: 200 if accept.get(r.headers["newswire-sequence"], True)
                           else 500).start()
    register(settings, "holes", server, concurrency=1)
    stories = [corpus.story(random.Random(6), f"gq-{i}", body_bytes=300) for i in range(3)]
    try:
        with pusher.Running(settings, config(schedule=(0, 0.05))):
            publish(settings, stories)
            wait_for(lambda: len(server.ok()) == 2 and
                     query(settings, "SELECT count(*) FROM deliveries WHERE status = 'dead'")[0][0] == 1,
                     "two delivered, one dead")
        dead = next(r for r in server.snapshot() if r.seq == 2)
        result = cli(settings, "replay", "--partner", "holes", "--send", "--no-progress")
        assert _totals(result.output) == {"re-sent": 3}
        again = server.ok()[2:]
        assert sorted(r.seq for r in again) == [4, 5, 6]
        replayed = next(r for r in again if r.webhook_id == dead.webhook_id)
        assert replayed.verified and _without_sequence(replayed) == _without_sequence(dead)
        gaps = _lines(settings, "deliveries", "gaps", "--partner", "holes")
        assert gaps[1].startswith("2\tgq-") and "\tdead\t" in gaps[1] and gaps[-1] == "1 unacknowledged"

        accept["2"] = True  # the partner asks for number 2 itself: a resend by number fills the gap
        cli(settings, "deliveries", "resend", "--partner", "holes", "--seq", "2")
        with pusher.Running(settings, config(schedule=(0, 0.05))):
            wait_for(lambda: any(r.seq == 2 for r in server.ok()), "number 2 acknowledged")
        assert _lines(settings, "deliveries", "gaps", "--partner", "holes")[-1] == "0 unacknowledged"
    finally:
        server.stop()


@on_both_stores
def test_what_the_pusher_queued_meanwhile_supersedes_a_replayed_version_in_the_queueing_transaction(settings):
    server = _partner(settings, "acme")
    server.stop()  # nothing is sent in this test: only the outbox is looked at
    rng = random.Random(7)
    a1 = corpus.story(rng, "mw-a", body_bytes=300)
    a2 = corpus.next_version(a1, "updated")
    b1 = corpus.story(rng, "mw-b", body_bytes=300)
    target = PartnerTarget(settings, "acme")
    items = [Item(0, n, 0, codec.decode(codec.encode(e)), codec.encode(e)) for n, e in enumerate([a1, b1])]
    assert [target.offer(i) for i in items] == ["queued", "queued"]
    live = outbox.Enqueuer(settings)  # meanwhile the pusher queues version 2 of mw-a
    live.handle(bus.Delivery(a2, SimpleNamespace(value=codec.encode(a2))))
    live.commit()
    live.close()
    target.commit()
    target.close()
    rows = query(settings, "SELECT event_id, seq FROM deliveries WHERE partner_id = 'acme' ORDER BY seq")
    assert [tuple(r) for r in rows] == [(a2["event_id"], 1), (b1["event_id"], 2)]  # no a1 after a2, no gap
    db = store.connect(settings)
    assert json.loads(outbox.payload(db, query(settings, "SELECT id FROM deliveries WHERE seq = 2")[0][0])
                      )["sequence"] == 2
    db.close()
    assert query(settings, "SELECT next_seq FROM partners WHERE id = 'acme'")[0][0] == 3
