"""The webhook state upgrades in place: a file of the first release, with data in it, opens
under the current schema with nothing lost; a file newer than the code is refused."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest

from newswire.config import Settings
from newswire.consumers.webhooks import outbox, partners, signing, store


def _settings(tmp_path: Path) -> Settings:
    return replace(Settings.from_env(), home=tmp_path)


def _first_release_file(path: Path) -> None:
    """A state file as the first release left it: its schema (step 1, never edited) and a partner
    with a delivery."""
    db = sqlite3.connect(path)
    db.executescript(store.MIGRATIONS[0])
    now = time.time()
    db.execute("INSERT INTO partners (id, name, url, format, filters, concurrency, rate_limit, enabled,"
               " disabled_reason, secrets, allow_cidrs, next_seq, created_at, updated_at) VALUES"
               " ('acme', 'Acme', 'https://acme.example/hook', 'ninjs', '{}', 1, 0, 0, 'gone (410)',"
               " ?, '[]', 2, ?, ?)", (json.dumps([signing.new_secret()]), now, now))
    db.execute("INSERT INTO deliveries (partner_id, event_id, article_id, version, event_type, seq, content_type,"
               " payload, status, next_attempt_at, created_at) VALUES"
               " ('acme', 'e1', 'a1', 1, 'published', 1, 'application/json', x'7b7d', 'delivered', ?, ?)", (now, now))
    db.commit()
    db.close()


def test_a_first_release_state_file_is_upgraded_in_place_with_its_data(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _first_release_file(store.path_of(settings))

    db = store.connect(settings)

    assert db.execute("PRAGMA user_version").fetchone()[0] == store.VERSION
    partner = partners.get(db, "acme")
    assert partner is not None and not partner.enabled and partner.disabled_reason == "gone (410)"
    assert partner.disabled_at is None  # added by step 2, unknown for a partner disabled before it
    assert [tuple(r) for r in db.execute("SELECT partner_id, seq, status FROM deliveries")] == [("acme", 1, "delivered")]
    assert partner.paused_until is None  # step 3
    assert outbox.payload(db, 1) == b"{}"  # step 4: its body, as it was sent, kept whole
    assert not db.execute("PRAGMA foreign_key_check").fetchall()
    db.close()
    again = store.connect(settings)  # a second open runs no step twice
    assert again.execute("PRAGMA user_version").fetchone()[0] == store.VERSION
    again.close()


def test_a_new_state_file_has_the_current_schema(tmp_path: Path) -> None:
    db = store.connect(_settings(tmp_path))
    columns = {row[1] for row in db.execute("PRAGMA table_info(partners)")}
    assert "disabled_at" in columns and db.execute("PRAGMA user_version").fetchone()[0] == store.VERSION


def test_a_state_file_newer_than_the_code_is_refused_untouched(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store.connect(settings).close()
    raw = sqlite3.connect(store.path_of(settings))
    raw.execute(f"PRAGMA user_version = {store.VERSION + 1}")
    raw.close()

    with pytest.raises(store.StateTooNew, match=f"version {store.VERSION + 1}, newer than"):
        store.connect(settings)
    raw = sqlite3.connect(store.path_of(settings))
    assert raw.execute("PRAGMA user_version").fetchone()[0] == store.VERSION + 1
