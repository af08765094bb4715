"""Render once (newswire.formats.kept): feeds, messages and pushes assembled from the kept
bytes of each event are byte for byte what the renderers make, each event is rendered once
per format, the memory is bounded and the disk copy answers after a restart."""

from __future__ import annotations

import json
import sqlite3
import uuid
import zlib

import pytest

from newswire.consumers.feeds.consumer import check_renders
from newswire.formats import kept, registry
from newswire.formats.kept import Renders
from tests.corpus_cases import NOW, cases, hostile

AUTHORITY = "news.agency.example"
CHANNEL = registry.Channel(updated=NOW, title="All", link="https://feeds.example.org/", description="Every story",
                           self_url="https://feeds.example.org/feeds/all.rss", feed_id="https://feeds.example.org/all",
                           transmit_id="changes-1-9", head={"feed": "all", "updated": "2026-11-26T09:00:00Z"})


def corpus(*, long: bool = False) -> list[dict]:
    """The test corpus and the hostile event (the 1 MB body only when ``long``: it is slow)."""
    return [event for name, event in cases().items() if long or name != "long"] + [hostile()]


@pytest.mark.parametrize("name", list(registry.FORMATS))
def test_an_assembled_feed_is_byte_for_byte_the_rendered_one(name):
    fmt, events = registry.FORMATS[name], corpus(long=True)
    renders = Renders(AUTHORITY)
    assert renders.feed(events, fmt, CHANNEL) == fmt.feed(events, CHANNEL, AUTHORITY)
    assert renders.feed(events[::-1], fmt, CHANNEL) == fmt.feed(events[::-1], CHANNEL, AUTHORITY)  # from kept bytes
    assert all(renders.item(e, fmt) == fmt.item(e, AUTHORITY) for e in events)


def test_each_event_is_rendered_once_per_format_and_a_hostile_one_stays_harmless():
    events, renders = corpus(), Renders(AUTHORITY)
    for name in registry.FORMATS:
        for _ in range(3):
            body = renders.feed(events, registry.FORMATS[name], CHANNEL)
            if registry.FORMATS[name].push == "envelope":  # ninjs: plain-text fields may say "<script>", HTML bodies not
                body = "".join(b["value"] for i in json.loads(body)["items"] for b in i.get("bodies", ())).encode()
            assert b"<script" not in body and b"javascript:" not in body and b"onerror" not in body
    assert renders.made == len(events) * len(registry.FORMATS)


def test_what_cannot_be_rendered_is_left_out_and_its_reason_kept():
    bad = {**cases()["plain"], "event_id": str(uuid.uuid4()), "headline": " "}
    renders = Renders(AUTHORITY)
    for _ in range(2):
        with pytest.raises(ValueError, match="^headline: missing or empty$"):
            renders.fragment(bad, registry.FORMATS["ninjs"])
        with pytest.raises(ValueError, match="^headline: missing or empty$"):  # a newsMessage needs one item
            renders.feed([bad], registry.FORMATS["newsml"], CHANNEL)
    assert renders.made == 2


def test_memory_is_bounded():
    plain = cases()["plain"]
    events = [{**plain, "event_id": str(uuid.uuid4())} for _ in range(40)]
    renders = Renders(AUTHORITY, max_bytes=20_000)
    renders.feed(events, registry.FORMATS["newsml"], CHANNEL)
    assert renders._size <= 20_000 and 0 < len(renders._memory) < len(events)


def test_the_disk_copy_answers_after_a_restart_without_rendering(tmp_path):
    events, fmt = corpus(), registry.FORMATS["atom"]
    first = Renders(AUTHORITY, path=tmp_path / "renders.sqlite3")
    expected = first.feed(events, fmt, CHANNEL)
    first.close()
    again = Renders(AUTHORITY, path=tmp_path / "renders.sqlite3")
    assert again.feed(events, fmt, CHANNEL) == expected
    assert again.made == 0 and again.hits == len(events)


def test_the_feeds_intake_check_keeps_the_newsml_bytes_it_rendered():
    event, renders = cases()["pictures"], Renders(AUTHORITY)
    check_renders(event, renders)
    renders.feed([event], registry.FORMATS["newsml"], CHANNEL)
    assert renders.made == 1 and renders.hits == 1


def test_a_batch_of_kept_items_is_loaded_at_once_and_what_is_not_kept_is_rendered(tmp_path):
    events, fmt, path = corpus(), registry.FORMATS["ninjs"], tmp_path / "renders.sqlite3"
    first = Renders(AUTHORITY, path=path)
    for event in events[:3]:
        first.item(event, fmt)
    first.close()
    again = Renders(AUTHORITY, path=path)
    again.load(events, fmt, items=True)
    assert again.hits == 0 and len(again._memory) == 3  # loaded, not yet asked for
    assert [again.item(e, fmt) for e in events] == [fmt.item(e, AUTHORITY) for e in events]
    assert again.hits == 3 and again.made == len(events) - 3
    again.close()


def _kept_rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM renders").fetchone()[0]


def test_a_file_made_for_another_authority_or_by_other_code_is_emptied_not_served(tmp_path, monkeypatch):
    events, fmt, path = corpus(), registry.FORMATS["ninjs"], tmp_path / "renders.sqlite3"
    first = Renders(AUTHORITY, path=path)
    first.feed(events, fmt, CHANNEL)
    first.close()
    assert _kept_rows(path) == len(events)
    other = Renders("other.agency.example", path=path)  # its ids are minted otherwise
    assert other.feed(events, fmt, CHANNEL) == fmt.feed(events, CHANNEL, "other.agency.example")
    assert other.made == len(events) and other.hits == 0
    other.close()
    monkeypatch.setattr(kept, "made_by", lambda authority: "a renderer of a newer release")
    newer = Renders("other.agency.example", path=path)
    assert _kept_rows(path) == 0  # emptied as it was opened
    newer.feed(events, fmt, CHANNEL)
    assert newer.made == len(events)
    newer.close()


def test_a_process_whose_shared_file_another_release_took_writes_nothing_more_to_it(tmp_path, monkeypatch):
    events, fmt, path = corpus(), registry.FORMATS["ninjs"], tmp_path / "renders.sqlite3"
    older = Renders(AUTHORITY, path=path)  # a live pusher, say, still running the release before
    older.item(events[0], fmt)
    older.flush()
    assert _kept_rows(path) == 1
    monkeypatch.setattr(kept, "made_by", lambda authority: "a renderer of a newer release")
    newer = Renders(AUTHORITY, path=path)  # a replay of the new release opens the file: emptied, its own
    assert _kept_rows(path) == 0
    for event in events[1:]:
        older.item(event, fmt)
    older.flush()  # refused: the older renders would be served by the newer release
    assert _kept_rows(path) == 0
    assert [older.item(e, fmt) for e in events[1:]] == [fmt.item(e, AUTHORITY) for e in events[1:]]  # from memory
    newer.item(events[0], fmt)
    newer.close()
    older.close()
    assert _kept_rows(path) == 1  # the newer release's own


def test_a_file_of_the_first_layout_or_not_a_database_is_replaced_or_done_without(tmp_path):
    event, fmt = cases()["plain"], registry.FORMATS["atom"]
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as db:  # layout 1: zlib rows in a WITHOUT ROWID table, no user_version
        db.execute("CREATE TABLE renders (event_id TEXT NOT NULL, format TEXT NOT NULL, data BLOB NOT NULL,"
                   " PRIMARY KEY (event_id, format)) WITHOUT ROWID")
        db.execute("INSERT INTO renders VALUES (?, 'atom', ?)", (event["event_id"], zlib.compress(b"<entry>stale</entry>")))
    renders = Renders(AUTHORITY, path=old)
    assert renders.fragment(event, fmt) == fmt.assembly.fragment(event, AUTHORITY) and renders.made == 1
    renders.close()
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == kept.LAYOUT
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"not a database at all, " * 100)
    renders = Renders(AUTHORITY, path=broken)
    assert renders.fragment(event, fmt) == fmt.assembly.fragment(event, AUTHORITY)  # from memory only
    renders.close()
    assert broken.read_bytes() == b"not a database at all, " * 100


def test_what_made_the_kept_bytes_changes_with_the_renderers_code_data_and_authority(tmp_path, monkeypatch):
    package = tmp_path / "some_renderer"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "item.py").write_text("def render(): return b'one'\n")
    (tmp_path / "vocabulary.py").write_text("")
    (tmp_path / "vocabulary.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(kept, "_RENDERERS", ("some_renderer", "vocabulary"))
    made_by = kept.made_by.__wrapped__  # not the cached one
    before = made_by(AUTHORITY)
    assert made_by(AUTHORITY) == before and made_by("other.agency.example") != before
    (package / "item.py").write_text("def render(): return b'two'\n")  # a module of the package
    changed = made_by(AUTHORITY)
    (tmp_path / "vocabulary.json").write_text('{"medtop:01000000": "arts"}')  # a module's data
    assert len({before, changed, made_by(AUTHORITY)}) == 3
