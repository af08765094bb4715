"""Drop-folder partners (issue 7): a ``file:///dir`` partner gets each delivery as a file named
by its sequence number, written by the real pusher from the real broker, through the same
outbox, order, numbering, receipts, retries and resend as an HTTP partner."""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from kafka import TopicPartition
from lxml import etree

from newswire import bus, corpus
from newswire.config import Settings
from newswire.consumers.webhooks import drop, pusher, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.signing import new_secret
from tests.official_schemas import newsml_schema, ninjs_validator
from tests.topic_reader import dead_letters
from tests.webhooks_support import cli, config, publish, query, wait_for

NAME = re.compile(r"^(\d{10})_([A-Za-z0-9._:-]+)_v(\d+)\.(xml|json|rss\.xml)$")
G2 = {"g2": "http://iptc.org/std/nar/2006-10-01/"}


def _add(settings, partner_id: str, folder: Path, fmt: str, **fields) -> None:
    db = store.connect(settings)
    try:  # no allow list: the SSRF guard does not apply to a drop folder
        registry.add(db, registry.Partner(id=partner_id, name=partner_id.title(), url=folder.as_uri(), format=fmt,
                                          secrets=(new_secret(),), **fields))
    finally:
        db.close()


def _files(folder: Path) -> list[str]:
    """The files a pickup sees (not the hidden temporary file of a write in progress)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def _parsed(folder: Path) -> list[tuple[int, str, int, bytes]]:
    """(seq, article id, version, content) of every file, in name (= transmission) order."""
    result = []
    for name in sorted(p.name for p in folder.iterdir()):
        match = NAME.match(name)
        assert match, f"unexpected file {name!r} in the drop folder (a temporary file left?)"
        result.append((int(match[1]), match[2], int(match[3]), (folder / name).read_bytes()))
    return result


def _consumed(settings, group_id: str, records) -> bool:
    """Whether the pusher's group has committed past every one of ``records``."""
    reader = bus.consumer(settings, group_id)
    try:
        return all((reader.committed(TopicPartition(r.topic, r.partition)) or 0) > r.offset for r in records)
    finally:
        reader.close()


def test_a_drop_folder_partner_gets_every_version_as_files_numbered_without_gaps(settings, tmp_path):
    rng = random.Random(5)
    latest = {f"dr-{i}": corpus.story(rng, f"dr-{i}", body_bytes=500) for i in range(6)}
    events = list(latest.values())
    for round_, kind in enumerate(["updated", "corrected", "updated", "killed", "updated"]):
        for article_id in ("dr-0", "dr-2", "dr-4") if round_ < 3 else ("dr-2",):
            latest[article_id] = corpus.next_version(latest[article_id], kind)
            events.append(latest[article_id])
    after_kill = events.pop()  # dr-2 v6, an update after its kill (v5): never delivered
    assert after_kill["version"] == 6 and events[-1]["event_type"] == "killed"
    folders = {"g2": tmp_path / "g2", "nj": tmp_path / "nj", "rss": tmp_path / "rss"}
    for folder in folders.values():
        folder.mkdir()
    _add(settings, "g2", folders["g2"], "newsml", concurrency=4)
    _add(settings, "nj", folders["nj"], "ninjs", concurrency=4)
    _add(settings, "rss", folders["rss"], "rss")
    cfg = config()
    with pusher.Running(settings, cfg):
        kafka = bus.producer(settings)
        try:
            bus.publish_events(settings, kafka, events[:9])
            records = bus.publish_events(settings, kafka, events[9:] + [after_kill])
        finally:
            kafka.close()
        wait_for(lambda: all(len(_files(f)) == len(events) for f in folders.values()),
                 f"{len(events)} files in each folder")
        wait_for(lambda: _consumed(settings, cfg.group_id, records), "the update after the kill read")
    expected = defaultdict(list)
    for event in events:
        expected[event["article_id"]].append(event["version"])
    kinds = {(e["article_id"], e["version"]): e["event_type"] for e in events}
    for partner_id, folder in folders.items():
        files = _parsed(folder)  # only final names: no temporary file left
        assert [seq for seq, *_ in files] == list(range(1, len(events) + 1))
        versions = defaultdict(list)
        for _, article_id, version, _ in files:
            versions[article_id].append(version)
        assert versions == expected  # every version, in order, per article; nothing after the kill
        assert versions["dr-2"][-1] == 5
    for seq, article_id, version, content in _parsed(folders["g2"]):
        assert NAME.match(f"{seq:010d}_{article_id}_v{version}.xml")
        message = etree.fromstring(content)
        newsml_schema().assertValid(message)
        assert message.findtext("g2:header/g2:transmitId", namespaces=G2) == str(seq)
        assert message.find("g2:itemSet/g2:newsItem", namespaces=G2).get("version") == str(version)
    for seq, article_id, version, content in _parsed(folders["nj"]):
        envelope = json.loads(content)
        ninjs_validator().validate(envelope["data"])
        assert envelope["sequence"] == seq and int(envelope["data"]["version"]) == version
        assert envelope["type"] == f"article.{kinds[article_id, version]}"
    for _, _, _, content in _parsed(folders["rss"]):
        assert etree.fromstring(content).tag == "item"
    receipts = query(settings, "SELECT DISTINCT outcome, status_code, error FROM attempts")
    assert [tuple(r) for r in receipts] == [("delivered", None, None)]
    statuses = query(settings, "SELECT status, count(*) FROM deliveries GROUP BY status")
    assert [tuple(r) for r in statuses] == [("delivered", 3 * len(events))]  # none queued after the kill


def test_a_missing_folder_is_retried_until_it_exists_under_the_same_numbers(settings, tmp_path):
    folder = tmp_path / "later"  # not there yet: the partner's side is not set up
    _add(settings, "late", folder, "ninjs", concurrency=2)
    events = [corpus.story(random.Random(i), f"lt-{i}", body_bytes=300) for i in range(3)]
    with pusher.Running(settings, config(schedule=(0,) + (0.1,) * 200)):
        publish(settings, events)
        wait_for(lambda: len(query(settings, "SELECT seq FROM attempts WHERE outcome = 'retry'"
                                             " GROUP BY seq HAVING count(*) >= 3")) == 3,
                 "three failed attempts of each delivery")
        folder.mkdir()
        wait_for(lambda: len(_files(folder)) == 3, "the three files once the folder exists")
    files = _parsed(folder)
    assert [seq for seq, *_ in files] == [1, 2, 3]
    assert all(json.loads(content)["sequence"] == seq for seq, *_, content in files)
    for seq in (1, 2, 3):
        outcomes = query(settings, "SELECT outcome, error FROM attempts WHERE seq = ? ORDER BY id", seq)
        assert [o for o, _ in outcomes[:-1]] == ["retry"] * (len(outcomes) - 1) and outcomes[-1][0] == "delivered"
        assert "No such file or directory" in outcomes[0][1] and str(folder) in outcomes[0][1]
    assert {tuple(r) for r in query(settings, "SELECT status, seq > 0 FROM deliveries")} == {("delivered", 1)}
    assert query(settings, "SELECT next_seq FROM partners")[0][0] == 4  # no number taken by a retry


def test_resend_writes_the_same_file_again_and_a_crashed_write_is_cleaned_up(settings, tmp_path):
    folder = tmp_path / "wire"
    folder.mkdir()
    _add(settings, "acme", folder, "newsml")
    crashed = folder / ".0000000009_gone_v1.xml.k2j4.tmp"  # a write a killed pusher left half done
    crashed.write_bytes(b"<newsMessage")
    with pusher.Running(settings, config()):
        publish(settings, [corpus.story(random.Random(i), f"rs-{i}", body_bytes=300) for i in range(3)])
        # the three written and recorded
        wait_for(lambda: len(_files(folder)) == 3 and query(
            settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] == 3, "three files, recorded")
        name = _files(folder)[1]
        assert name.startswith("0000000002_")
        before = (folder / name).read_bytes()
        (folder / name).unlink()  # the partner's pickup took it, then lost it
        assert "resending 1 deliveries (2-2)" in cli(settings, "deliveries", "resend", "--partner", "acme",
                                                    "--seq", "2").output
        wait_for(lambda: len(_files(folder)) == 3, "the resent file")
    assert _files(folder)[1] == name and (folder / name).read_bytes() == before
    assert not crashed.exists()  # removed when the partner's worker started
    assert tuple(query(settings, "SELECT tries, status FROM deliveries WHERE seq = 2")[0]) == (2, "delivered")


def test_only_absolute_local_paths_are_drop_folders(tmp_path):
    settings = replace(Settings.from_env(), home=tmp_path)
    good = cli(settings, "partners", "add", "acme", "--name", "Acme", "--url", "file:///srv/wire/acme",
               "--format", "newsml")
    assert "url:           file:///srv/wire/acme" in good.output
    assert cli(settings, "partners", "add", "lh", "--name", "Lh", "--url", "file://localhost/srv/wire/lh").exit_code == 0
    for url, problem in [("file://ftp.example.com/srv/wire", "not on host 'ftp.example.com'"),
                         ("file:wire/acme", "must be an absolute path"),
                         ("file:///srv/wire/../../etc", "may not contain '..'")]:
        bad = cli(settings, "partners", "add", "bad", "--name", "Bad", "--url", url, ok=False)
        assert bad.exit_code == 1 and "url: " in bad.output and problem in bad.output, bad.output
    moved = cli(settings, "partners", "update", "acme", "--url", "file://nas/wire", ok=False)
    assert moved.exit_code == 1 and "url: a drop folder must be on this machine" in moved.output
    # the SSRF guard still refuses loopback HTTP endpoints (no allow list here)
    loop = cli(settings, "partners", "add", "web", "--name", "Web", "--url", "http://127.0.0.1:9/h", ok=False)
    assert loop.exit_code == 1 and "loopback" in loop.output


def test_file_names_sort_in_sequence_order_and_name_the_format():
    assert drop.file_name(7, "a:b-1", 3, "newsml") == "0000000007_a:b-1_v3.xml"
    assert drop.file_name(12345678901, "x", 1, "ninjs") == "12345678901_x_v1.json"
    assert drop.file_name(10, "x", 1, "rss") == "0000000010_x_v1.rss.xml"
    names = [drop.file_name(seq, "z", 1, "ninjs") for seq in (1, 2, 9, 10, 11, 100, 999)]
    assert sorted(names) == names


def test_a_folder_missing_past_the_last_attempt_is_dead_lettered_and_a_gap_until_redriven(settings, tmp_path):
    folder = tmp_path / "gone"
    _add(settings, "away", folder, "ninjs", concurrency=1)
    with pusher.Running(settings, config(schedule=(0, 0.05))):
        publish(settings, [corpus.story(random.Random(i), f"dd-{i}", body_bytes=300) for i in range(2)])
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'dead'")[0][0] == 2,
                 "both dead after two attempts")
        gaps = cli(settings, "deliveries", "gaps", "--partner", "away").output.strip().splitlines()
        assert [line.split("\t")[0] for line in gaps[1:-1]] == ["1", "2"] and gaps[-1] == "2 unacknowledged"
        assert all("\tdead\t2\tcannot write the file: " in line and "No such file or directory" in line
                   for line in gaps[1:-1])
        dead = {dict(r.headers)["webhook.seq"]: dict(r.headers) for r in dead_letters(settings)}
        assert sorted(dead) == [b"1", b"2"]
        assert all(h["webhook.partner"] == b"away" and b"No such file or directory" in h["dlq.reason"]
                   for h in dead.values())
        folder.mkdir()
        assert "redriven: 2" in cli(settings, "deliveries", "redrive", "--partner", "away").output
        wait_for(lambda: len(_files(folder)) == 2, "both files after the redrive")
    assert [seq for seq, *_ in _parsed(folder)] == [1, 2]
    assert cli(settings, "deliveries", "gaps", "--partner", "away").output.strip().endswith("0 unacknowledged")
    durations = query(settings, "SELECT duration_ms FROM attempts WHERE outcome = 'delivered'")
    assert len(durations) == 2 and all(d[0] > 0 for d in durations)
