"""The NewsML-G2 drop folder against the real broker: whole files, valid against the XSD,
idempotent on redelivery, never an older version after a newer one, dead letters."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lxml import etree

from newswire import corpus
from newswire.bus import header
from newswire.consumers.feeds.drop_folder import DropFolderBusy, event_loop, relative_path
from newswire.formats import newsml
from tests.feeds_support import publish, send_raw, story
from tests.topic_reader import dead_letters, drain
from tests.replay_support import NEWSWIRE, cli_env, own_group, own_groups
from tests.test_format_newsml import SCHEMA as NEWSML_SCHEMA

N = {"n": "http://iptc.org/std/nar/2006-10-01/"}
T = datetime(2026, 11, 25, 23, 58, tzinfo=timezone.utc)
pytestmark = pytest.mark.broker


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".newswire-drop.lock"}


def test_every_version_lands_whole_valid_and_dated(settings, tmp_path):
    root = tmp_path / "drop"
    a = story("drop-a", T)
    b = story("drop-b", T + timedelta(minutes=5), language="ar")
    events = [a, b, corpus.next_version(a, "corrected", correction_note="Figure fixed."),
              corpus.next_version(b, "killed", kill_reason="Legal."),
              story("drop-held", T, embargo_until=T + timedelta(days=1))]
    publish(settings, *events)
    (root / "2026" / "11" / "25").mkdir(parents=True)
    leftover = root / "2026" / "11" / "25" / ".drop-a_v9.xml.abc123.tmp"  # as a crash would leave it
    leftover.write_bytes(b"<newsItem")
    loop, folder = event_loop(settings, root, group_id=own_group(settings, "newsml"))
    try:
        drain(loop, len(events))
        folder_files = files(root)
        assert sorted(folder_files) == sorted(str(relative_path(e)) for e in events)
        assert "2026/11/26/drop-b_v1.xml" in folder_files  # dated by the version, in UTC
        for event in events:
            data = folder_files[str(relative_path(event))]
            assert data == newsml.news_item_bytes(event)
            item = etree.fromstring(data)
            NEWSML_SCHEMA.assertValid(item)
            assert item.get("version") == str(event["version"])
        killed = etree.fromstring(folder_files["2026/11/26/drop-b_v2.xml"])
        assert killed.find("n:itemMeta/n:pubStatus", N).get("qcode") == "stat:canceled"
        held = etree.fromstring(folder_files[str(relative_path(events[-1]))])
        assert held.find("n:itemMeta/n:embargoed", N) is not None
        assert not leftover.exists() and not list(root.rglob("*.tmp"))
        with pytest.raises(DropFolderBusy):
            event_loop(settings, root, group_id=own_group(settings, "newsml"))
    finally:
        loop.close()
        folder.close()


def test_redelivery_is_idempotent_and_stale_versions_are_never_written(settings, tmp_path):
    root = tmp_path / "drop"
    v1 = story("late", T)
    v2 = corpus.next_version(v1, "updated", headline="Newer")
    publish(settings, v2, v1, story("other", T))
    loop, folder = event_loop(settings, root, group_id=own_group(settings, "newsml"))
    try:
        drain(loop, 3)
        assert folder.written == 2 and folder.skipped == 1
    finally:
        loop.close()
        folder.close()
    first = files(root)
    assert str(relative_path(v1)) not in first and str(relative_path(v2)) == "2026/11/26/late_v2.xml" in first
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.xml")}

    # the whole topic again, as after a lost offset commit: another group, another state file
    elsewhere = replace(settings, home=tmp_path / "other-home")
    loop, folder = event_loop(elsewhere, root, group_id=own_group(settings, "newsml-replay"))
    try:
        drain(loop, 3)
        assert folder.written == 0 and folder.skipped == 1
    finally:
        loop.close()
        folder.close()
    assert files(root) == first
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.xml")} == stamps

    # with its own state, a version already handed over is not written again (the client may have taken it)
    (root / "2026/11/25/other_v1.xml").unlink()
    loop, folder = event_loop(settings, root, group_id=own_group(settings, "newsml-again"))
    try:
        drain(loop, 3)
        assert folder.written == 0 and folder.skipped == 3
    finally:
        loop.close()
        folder.close()
    assert not (root / "2026/11/25/other_v1.xml").exists()


def test_hostile_messages_go_to_the_dead_letters_through_the_cli(settings, tmp_path):
    root = tmp_path / "drop"
    send_raw(settings, b"junk", b"\x00\x01 not an event")
    publish(settings, story("cli-a", T), story("cli-b", T) | {"headline": " "})
    result = subprocess.run([*NEWSWIRE, "newsml", "drop", "--dir", str(root), "--idle-stop", "6"],
                            env=cli_env(settings) | own_groups(settings), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "written=1 skipped=0 dead_lettered=2" in result.stdout
    assert [p.name for p in root.rglob("*.xml")] == ["cli-a_v1.xml"]
    reasons = sorted(header(r, "dlq.reason") for r in dead_letters(settings))
    assert len(reasons) == 2 and "headline" in reasons[0] and "undecodable" in reasons[1]
