"""The archive: crash windows, reading back (get/list in every format), damaged files, verify."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import fastavro
import pytest
from kafka.consumer.fetcher import ConsumerRecord
from lxml import etree

from newswire import bus, codec, corpus
from newswire.cli import main
from newswire.consumers.archive.archiver import Archiver, default_root, event_loop
from newswire.consumers.archive.index import Index
from newswire.consumers.archive.reader import ArchiveReader
from tests.cli_runner import invoke
from tests.replay_support import T0, cli_env, events, ms, own_group, produce


def _deliveries(items, start=T0, topic="articles"):
    out = []
    for offset, event in enumerate(items):
        payload = codec.encode(event)
        record = ConsumerRecord(topic, 0, None, offset, ms(start + timedelta(minutes=offset)), 0,
                                event["article_id"].encode(), payload, [], None, 0, len(payload), 0)
        out.append(bus.Delivery(codec.decode(payload), record))
    return out


def _crash(archiver: Archiver) -> None:
    """What kill -9 leaves: files as written so far, the lock released, nothing else done."""
    for segment in archiver._open.values():
        segment.writer.fo.close()
    archiver.index.close()
    archiver._lock.close()


def test_a_crash_after_the_fsync_but_before_the_index_commit_is_cut_back_and_rewritten(tmp_path):
    batch = _deliveries(events(40))
    archiver = Archiver(tmp_path)
    for delivery in batch:
        archiver.handle(delivery)
    archiver._append(archiver._taken)  # commit's first step: the batch's events in their segments
    for segment in archiver._open.values():
        segment.writer.flush()  # the blocks are on disk, the index never heard of them
    _crash(archiver)

    archiver = Archiver(tmp_path)  # recovery cuts the unindexed blocks
    assert archiver.index.count() == 0
    for delivery in batch:  # Kafka delivers the uncommitted batch again
        archiver.handle(delivery)
    archiver.commit()
    archiver.close()
    with ArchiveReader(tmp_path) as reader:
        assert reader.verify() == (40, [])


def test_a_crash_after_the_index_commit_but_before_the_kafka_commit_stores_nothing_twice(tmp_path):
    batch = _deliveries(events(30))
    archiver = Archiver(tmp_path)
    for delivery in batch:
        archiver.handle(delivery)
    archiver.commit()
    _crash(archiver)

    archiver = Archiver(tmp_path)
    for delivery in batch:
        archiver.handle(delivery)
    archiver.commit()
    assert (archiver.archived, archiver.duplicates) == (0, 30)
    archiver.close()
    with ArchiveReader(tmp_path) as reader:
        assert reader.verify() == (30, [])


def test_a_segment_registered_but_never_committed_is_removed(tmp_path):
    archiver = Archiver(tmp_path)
    archiver.handle(_deliveries(events(3))[0])
    archiver._append(archiver._taken)  # commit's first step: the segment is registered and created
    path = next(iter(archiver._open.values())).writer.path
    _crash(archiver)
    assert (tmp_path / path).exists()
    Archiver(tmp_path).close()
    assert not (tmp_path / path).exists()


def test_one_writer_per_archive_root(tmp_path):
    first = Archiver(tmp_path)
    with pytest.raises(RuntimeError, match="another archive writer"):
        Archiver(tmp_path)
    first.close()


@pytest.fixture
def archived(settings):
    """An archive of 60 events over two publish dates (five blocks), from the real broker."""
    rng = random.Random(8)
    story = corpus.story(rng, "story-1", language="ar")
    story["categories"] = ["diplomacy"]
    versions = [story, corpus.next_version(story, "corrected"), corpus.next_version(story, "updated")]
    versions[2]["version"] = 3
    items = versions + events(57, seed=3)
    stamps = []
    loop, archiver = event_loop(settings, instance_id=None, group_id=own_group(settings, "archive"))
    for n in range(5):  # five batches: each becomes one block of each segment it touches
        chunk = items[n * 12:(n + 1) * 12]
        stamps += produce(settings, chunk, start=T0 + timedelta(hours=n * 6), step=timedelta(minutes=1),
                          v1_every=5)
        for _ in range(40):
            if archiver.archived == len(stamps):
                break
            loop.poll_once(timeout_ms=500)
    loop.close()
    archiver.close()
    assert archiver.archived == len(items)
    return items, stamps


def _cli(settings, *args):
    return invoke(main, args, env=cli_env(settings), catch_exceptions=False)


def test_get_returns_each_version_in_every_format(settings, archived):
    items, _ = archived
    result = _cli(settings, "archive", "get", "story-1")
    assert result.exit_code == 0, result.output
    latest = json.loads(result.output)
    assert (latest["version"], latest["event_id"]) == (3, items[2]["event_id"])
    first = json.loads(_cli(settings, "archive", "get", "story-1", "--version", "1").output)
    assert first["event_id"] == items[0]["event_id"] and first["headline"] == items[0]["headline"]

    newsml = _cli(settings, "archive", "get", "story-1", "--version", "2", "--format", "newsml").stdout_bytes
    root = etree.fromstring(newsml)
    assert etree.QName(root).localname == "newsItem"
    assert root.get("version") == "2"
    ninjs = json.loads(_cli(settings, "archive", "get", "story-1", "--format", "ninjs").output)
    assert ninjs["version"] == "3" and ninjs["headlines"][0]["value"] == items[2]["headline"]

    missing = _cli(settings, "archive", "get", "story-1", "--version", "9")
    assert missing.exit_code == 1 and "no version 9" in missing.output and "1, 2, 3" in missing.output


def test_list_by_window_and_category(settings, archived):
    items, stamps = archived
    since, until = stamps[10], stamps[30]
    result = _cli(settings, "archive", "list", "--since", f"{_iso(since)}", "--until", f"{_iso(until)}")
    header, *lines = result.stdout.splitlines()
    assert header.split("\t") == ["published", "article_id", "version", "event_type", "event_id", "categories"]
    assert len(lines) == 20  # [since, until): 10..29
    assert {line.split("\t")[4] for line in lines} == {e["event_id"] for e in items[10:30]}
    keys = [(line.split("\t")[0], line.split("\t")[1], int(line.split("\t")[2])) for line in lines]
    assert keys == sorted(keys)  # by publication time, then article and version
    diplomacy = _cli(settings, "archive", "list", "--category", "diplomacy", "--json").stdout.splitlines()
    assert len(diplomacy) == sum("diplomacy" in e["categories"] for e in items)
    assert all("diplomacy" in json.loads(line)["categories"] for line in diplomacy)


def test_a_damaged_and_a_truncated_file_are_reported_and_the_rest_stays_readable(settings, archived):
    items, _ = archived
    root = default_root(settings)
    with ArchiveReader(root) as reader:
        entries = list(reader.entries())
        by_segment = {}
        for entry in entries:
            by_segment.setdefault(entry.segment, []).append(entry)
    damaged, truncated = sorted(by_segment, key=lambda p: -len({e.block_offset for e in by_segment[p]}))[:2]
    # flip bytes in the middle of the damaged file's last block; cut the other file in its last block
    last = max(e.block_offset for e in by_segment[damaged])
    data = bytearray((root / damaged).read_bytes())
    for i in range(last + 8, last + 40):
        data[i] ^= 0xFF
    (root / damaged).write_bytes(bytes(data))
    cut_at = max(e.block_offset for e in by_segment[truncated]) + 10
    with open(root / truncated, "r+b") as fo:
        fo.truncate(cut_at)

    result = _cli(settings, "archive", "verify")
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("PROBLEM")]
    assert any(damaged in p and f"offset {last}" in p for p in problems), problems
    assert any(truncated in p and f"file has {cut_at} bytes" in p for p in problems), problems

    bad = [e for e in entries if (e.segment, e.block_offset) in
           {(damaged, last), (truncated, cut_at - 10)}]
    good = [e for e in entries if e not in bad]
    assert bad and good
    for entry in good:
        assert json.loads(_cli(settings, "archive", "get", entry.article_id, "--version",
                               str(entry.version)).output)["event_id"] == entry.event_id
    lost = bad[0]
    result = _cli(settings, "archive", "get", lost.article_id, "--version", str(lost.version))
    assert result.exit_code == 1 and lost.segment in result.output and "unreadable" in result.output
    assert len(_cli(settings, "archive", "list").stdout.splitlines()) == 1 + len(items)  # a header, every event


def _iso(stamp_ms: int) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(stamp_ms / 1000, tz=timezone.utc).isoformat()


def test_archive_order_is_used_for_replays_only_while_it_keeps_each_partition_in_offset_order(tmp_path):
    """Archive order (each block read once) unless the archive's group was reset past events and
    back, which archives a partition's older offsets after newer ones: then by position."""
    index = Index(tmp_path / "index.sqlite")
    index.add_segment("events/s.avro", "2026-11-20", 2)

    def archived(event_id: str, partition: int, offset: int) -> dict:
        return {"event_id": event_id, "article_id": event_id, "version": 1, "event_type": "published",
                "occurred_at": 0, "published_at": 0, "categories": json.dumps(["politics", "sport"]),
                "topic": "articles", "partition": partition, "offset": offset, "segment": "events/s.avro",
                "block_offset": 0, "block_index": 0, "cleaned": 0}

    index.commit([archived("a", 0, 5), archived("b", 1, 2), archived("c", 0, 6), archived("d", 1, 3)], {})
    assert index.in_offset_order("articles")
    assert [e.event_id for e in index.entries(category="sport")] == ["a", "b", "c", "d"]  # categories by json_each
    index.commit([archived("e", 1, 0)], {})  # partition 1's offset 0 archived after its offset 3
    assert not index.in_offset_order("articles") and index.in_offset_order("other-topic")
    index.close()


def test_the_reader_gives_each_event_back_as_kafka_had_it_and_as_the_newest_schema(tmp_path):
    batch = _deliveries(events(25))
    archiver = Archiver(tmp_path)
    for delivery in batch[:10]:
        archiver.handle(delivery)
    archiver.commit()  # two blocks
    for delivery in batch[10:]:
        archiver.handle(delivery)
    archiver.commit()
    archiver.close()
    with ArchiveReader(tmp_path) as reader:
        entries = list(reader.entries())
        assert len(entries) == 25
        by_id = {delivery.event["event_id"]: delivery for delivery in batch}
        for entry in entries:
            written = by_id[entry.event_id].record.value
            assert reader.payload(entry) == written  # the stored bytes: nothing encoded again
            assert reader.event(entry) == codec.decode(written)


def test_segments_written_with_deflate_by_an_earlier_release_read_beside_new_zstandard_ones(tmp_path, monkeypatch):
    from newswire.consumers.archive import segments

    batch = _deliveries(events(30))
    monkeypatch.setattr(segments, "CODEC", "deflate")  # what releases before 2026-12-04 wrote
    archiver = Archiver(tmp_path)
    for delivery in batch[:15]:
        archiver.handle(delivery)
    archiver.commit()
    archiver.close()
    monkeypatch.undo()
    archiver = Archiver(tmp_path)  # the upgraded release: a new run, new segments
    for delivery in batch[15:]:
        archiver.handle(delivery)
    archiver.commit()
    archiver.close()

    codecs = sorted(fastavro.reader(path.open("rb")).metadata["avro.codec"]
                    for path in tmp_path.rglob("*.avro"))
    assert codecs == ["deflate", "zstandard"]
    with ArchiveReader(tmp_path) as reader:
        assert reader.verify() == (30, [])
        entries = list(reader.entries())
        assert sorted(reader.payload(entry) for entry in entries) == sorted(d.record.value for d in batch)
