"""What the status page reads for one story or one partner: every version of an article (from
the archive index and the webhook state), every partner it went to with each attempt's answer,
and a partner's own page (health, breaker, queue, latest attempts, gaps). Read-only."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from newswire.config import Settings
from newswire.consumers.archive.index import Index
from newswire.consumers.webhooks import partner_state, receipts, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.dialect import Db

EVENT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: the latest attempts a partner's page shows
LATEST_ATTEMPTS = 50


def archive_root(settings: Settings) -> Path:
    """Where the archive is (as ``newswire archive`` and ``replay`` find it)."""
    return Path(os.environ.get("NEWSWIRE_ARCHIVE_ROOT") or settings.home / "archive")


def state_db(settings: Settings) -> Db | None:
    """A connection to the webhook state, or None while there is none."""
    return store.connect(settings, synchronous="NORMAL") if store.exists(settings) else None


def archive_index(settings: Settings) -> Index | None:
    path = archive_root(settings) / "index.sqlite"
    return Index(path, readonly=True) if path.exists() else None


@dataclass
class Delivery:
    partner: str
    seq: int
    status: str
    tries: int
    delivered_at: str | None
    attempts: list[dict] = field(default_factory=list)


@dataclass
class Version:
    event_id: str
    version: int
    event_type: str
    published: str | None = None
    archived: bool = False
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class Found:
    query: str
    article_id: str | None
    versions: list[Version]


def _attempt(row: sqlite3.Row) -> dict:
    return {"at": receipts.iso_time(row["at"]), "attempt": row["attempt"], "status": row["status_code"],
            "outcome": row["outcome"], "ms": row["duration_ms"], "answer": row["error"]}


def search(settings: Settings, text: str) -> Found:
    """Every version of the article ``text`` names (an article id, or an event id of one of its
    versions), with every delivery to every partner and each attempt's answer."""
    text = text.strip()
    db, index = state_db(settings), archive_index(settings)
    try:
        article_id = text
        if EVENT_ID.fullmatch(text):
            row = db.execute("SELECT article_id FROM events WHERE event_id = ?", (text,)).fetchone() if db else None
            article_id = row[0] if row else (index.article_of(text) if index else None)
        versions: dict[str, Version] = {}
        if article_id and index:
            for entry in index.versions(article_id):
                versions[entry.event_id] = Version(entry.event_id, entry.version, entry.event_type,
                                                   entry.published.isoformat(timespec="seconds"), archived=True)
        if article_id and db:
            rows = db.execute("SELECT * FROM deliveries WHERE article_id = ? ORDER BY version, partner_id, seq",
                              (article_id,)).fetchall()
            attempts: dict[int, list[dict]] = {}
            for a in db.execute("SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
                                " WHERE d.article_id = ? ORDER BY a.at, a.id", (article_id,)):
                attempts.setdefault(a["delivery_id"], []).append(_attempt(a))
            for r in rows:
                version = versions.setdefault(r["event_id"], Version(r["event_id"], r["version"], r["event_type"]))
                version.deliveries.append(Delivery(r["partner_id"], r["seq"], r["status"], r["tries"],
                                                   receipts.iso_time(r["delivered_at"]), attempts.get(r["id"], [])))
        return Found(text, article_id, sorted(versions.values(), key=lambda v: (v.version, v.event_id)))
    finally:
        if db:
            db.close()
        if index:
            index.close()


@dataclass
class PartnerPage:
    partner: registry.Partner
    state: partner_state.PartnerState
    health: dict
    attempts: list[dict]
    gaps: list[dict]


def partner_page(settings: Settings, config: WebhookConfig, partner_id: str, *, now: float | None = None
                 ) -> PartnerPage:
    """One partner's page; :class:`.partners.UnknownPartner` when there is none."""
    now = time.time() if now is None else now
    db = state_db(settings)
    if db is None:
        raise registry.UnknownPartner(f"no partner {partner_id!r}")
    try:
        partner = registry.get(db, partner_id)
        (state,) = partner_state.partner_states(db, config, now=now, only=partner_id)
        (health,) = receipts.health(db, now=now, only=partner_id)
        attempts = [{**_attempt(r), "article_id": r["article_id"], "version": r["version"], "seq": r["seq"]}
                    for r in receipts.attempts(db, partner_id=partner_id, limit=LATEST_ATTEMPTS)]
        gaps = [{"seq": r["seq"], "article_id": r["article_id"], "version": r["version"], "status": r["status"],
                 "tries": r["tries"], "answer": r["last_error"]} for r in receipts.gaps(db, partner_id)]
        return PartnerPage(partner, state, health, attempts, gaps)
    finally:
        db.close()


def still_dead(settings: Settings, delivery_ids: list[int]) -> set[int]:
    """Which of these webhook deliveries are dead now (a redrive made the others pending again)."""
    db = state_db(settings)
    if db is None or not delivery_ids:
        return set()
    try:
        marks = ",".join("?" * len(delivery_ids))
        return {r[0] for r in db.execute(f"SELECT id FROM deliveries WHERE status = 'dead' AND id IN ({marks})",
                                         delivery_ids)}
    finally:
        db.close()
