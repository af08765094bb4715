"""What operators ask the state file: attempts (receipts), the kill report, sequence gaps,
and resending deliveries by sequence number."""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from newswire import logs
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.dialect import Db
from newswire.consumers.webhooks.outbox import transaction

log = logs.get(__name__)

#: outcomes of attempts that did not deliver
FAILED = ("retry", "throttled", "dead", "gone")


def attempts(db: Db, *, partner_id: str | None = None, status: str | None = None,
             since_at: float | None = None, article_id: str | None = None, limit: int = 100) -> list[sqlite3.Row]:
    """Receipts, newest first. ``status``: delivered, failed (anything else), or one outcome."""
    where, args = ["TRUE"], []
    if partner_id:
        where.append("partner_id = ?"), args.append(partner_id)
    if status == "failed":
        where.append(f"outcome IN ({','.join('?' * len(FAILED))})"), args.extend(FAILED)
    elif status:
        where.append("outcome = ?"), args.append(status)
    if since_at is not None:
        where.append("at >= ?"), args.append(since_at)
    if article_id:
        where.append("article_id = ?"), args.append(article_id)
    return db.execute(f"SELECT * FROM attempts WHERE {' AND '.join(where)} ORDER BY at DESC, id DESC LIMIT ?",
                      (*args, limit)).fetchall()


def kill_report(db: Db, *, partner_id: str | None = None) -> list[sqlite3.Row]:
    """Per kill and partner that had the story: delivered or not, attempts, last error.

    One row per (partner, kill) even when a replay sent the kill again under a new number:
    its first delivery that reached the partner, else its latest one."""
    where, args = "event_type = 'killed'", []
    if partner_id:
        where += " AND partner_id = ?"
        args.append(partner_id)
    return db.execute(f"SELECT * FROM (SELECT id, partner_id, article_id, version, event_id, seq, status, tries,"
                      f" last_status, last_error, created_at, delivered_at, row_number() OVER (PARTITION BY"
                      f" partner_id, event_id ORDER BY status = 'delivered' DESC,"
                      f" CASE WHEN status = 'delivered' THEN id ELSE -id END) AS pick FROM deliveries WHERE {where})"
                      f" AS picked WHERE pick = 1 ORDER BY partner_id, created_at", args).fetchall()


def health(db: Db, *, window_s: float = 3600.0, now: float | None = None, only: str | None = None) -> list[dict]:
    """Per partner (or ``only`` that one), for the status page: enabled, last success, failure
    rate over ``window_s``, failed attempts in a row since it last answered (what opens its
    circuit), retries pending. Each figure is an index lookup per partner."""
    now = time.time() if now is None else now
    where, args = (" WHERE p.id = ?", (only,)) if only else ("", ())
    rows = db.execute(
        "SELECT p.id, p.enabled, p.disabled_reason,"
        # (the newest first, down the partner's index: max() would read every receipt of the partner)
        " (SELECT at FROM attempts a WHERE a.partner_id = p.id AND a.outcome = 'delivered'"
        "   ORDER BY a.at DESC LIMIT 1) AS last_success,"
        " (SELECT count(*) FROM attempts a WHERE a.partner_id = p.id AND a.at >= ?) AS recent,"
        " (SELECT count(*) FROM attempts a WHERE a.partner_id = p.id AND a.at >= ?"
        f"   AND a.outcome IN ({','.join('?' * len(FAILED))})) AS recent_failed,"
        " p.failing,"
        " (SELECT count(*) FROM deliveries d WHERE d.partner_id = p.id AND d.status = 'pending'"
        "   AND d.attempts > 0) AS pending_retries"
        f" FROM partners p{where} ORDER BY p.id", (now - window_s, now - window_s, *FAILED, *args)).fetchall()
    return [{
        "partner": r["id"],
        "enabled": "yes" if r["enabled"] else f"no ({r['disabled_reason'] or 'disabled'})",
        "last_success": iso_time(r["last_success"]),
        "failure_rate": f"{r['recent_failed'] / r['recent']:.0%}" if r["recent"] else "–",
        "failing": r["failing"],
        "pending_retries": r["pending_retries"],
    } for r in rows]


def iso_time(at: float | None) -> str | None:
    """An epoch time as ISO 8601 UTC to the second (None stays None)."""
    return None if at is None else datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")


def gaps(db: Db, partner_id: str) -> list[sqlite3.Row]:
    """Sequence numbers assigned to this partner but not (yet) acknowledged with a 2xx."""
    return db.execute("SELECT seq, id, article_id, version, event_type, event_id, status, tries, last_status,"
                      " last_error FROM deliveries WHERE partner_id = ? AND status != 'delivered' ORDER BY seq",
                      (partner_id,)).fetchall()


def parse_seq_range(text: str) -> tuple[int, int]:
    """``"120-135"`` or ``"120"`` → (120, 135) / (120, 120)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text, re.ASCII)
    if not match:
        raise ValueError(f"seq: {text!r} is not a number or a range like 120-135")
    low, high = int(match[1]), int(match[2] or match[1])
    if high < low:
        raise ValueError(f"seq: range {text!r} ends before it starts")
    return low, high


@dataclass(frozen=True)
class Failing:
    """A partner's failed attempts since its last answer (what opens its circuit)."""

    failures: int
    last_at: float


def failing(db: Db, partner_id: str) -> Failing | None:
    """The attempts that failed in a row since the partner last answered (2xx or 410), as the
    pusher's circuit breaker counts them (a throttled attempt neither counts nor resets), or
    None when there are none (kept as receipts are written: :func:`.partners.note_attempts`)."""
    count, last_at = db.execute("SELECT failing, last_failure_at FROM partners WHERE id = ?",
                                (partner_id,)).fetchone()
    return Failing(count, last_at) if count else None


def resend(db: Db, partner_id: str, low: int, high: int, *, now: float | None = None) -> list[int]:
    """Send these deliveries again, with their original sequence numbers, webhook-ids and
    bodies, whatever their state (a partner asks for what it missed). Returns the numbers.

    A delivery never tried yet keeps its due time when that is later: it waits for its
    embargo to lift (a resend never sends an embargoed story early)."""
    now = time.time() if now is None else now
    with transaction(db):
        seqs = [r[0] for r in db.execute("SELECT seq FROM deliveries WHERE partner_id = ? AND seq BETWEEN ? AND ?"
                                         " ORDER BY seq", (partner_id, low, high))]
        db.execute(f"UPDATE deliveries SET status = 'pending', attempts = 0, revision = revision + 1, next_attempt_at ="
                   f" CASE WHEN tries = 0 THEN {db.greatest}(next_attempt_at, ?) ELSE ? END"
                   " WHERE partner_id = ? AND seq BETWEEN ? AND ?", (now, now, partner_id, low, high))
        registry.outbox_changed(db, [partner_id], now)
    log.info("deliveries_resent", partner=partner_id, seq_from=low, seq_to=high, count=len(seqs))
    return seqs
