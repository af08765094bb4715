"""What a partner can read and do, one function per operation, each on one partner's rows
only (its id comes from the caller's token, never from the request). The JSON API
(:mod:`.handlers`) and the page (:mod:`.page`) both call these.

Writes go through the state's one writer of each table: the registry (:mod:`..webhooks.partners`:
pause is a disable, resume an enable, signing secrets), the deliveries' state
(:func:`..webhooks.receipts.resend`), tokens (:mod:`.tokens`).

Embargo: a delivery queued for later and never tried yet (``tries = 0``, due in the future)
is, for a partner not entitled to embargoed copy, a story under embargo; it is shown only as
its sequence number, ``scheduled``, with nothing of the story, and bodies are never shown
at all (they are only pushed).
"""

from __future__ import annotations

import time
from typing import Iterable

from newswire.consumers.partner_api import audit, tokens
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import receipts
from newswire.consumers.webhooks.dialect import Db

#: the reason a partner's own pause is kept under (a resume lifts only that one)
PAUSE_REASON = "paused by the partner (partner API)"
#: the widest range one resend may ask for
MAX_RESEND = 1000
#: deliveries per page
MAX_PAGE = 500

_DELIVERY = ("id, seq, event_id, article_id, version, event_type, status, tries, next_attempt_at, last_status,"
             " last_error, created_at, delivered_at")


class Conflict(Exception):
    """What was asked cannot be done in the partner's state (409); the message says why."""


class NotFound(LookupError):
    """Nothing of this partner's by that number (404)."""


def _scheduled(row, now: float) -> bool:
    return row["status"] == "pending" and row["tries"] == 0 and row["next_attempt_at"] > now


def state_of(partner: registry.Partner) -> str:
    if partner.enabled:
        return "enabled"
    return "paused" if partner.disabled_reason == PAUSE_REASON else "disabled"


def me(db: Db, partner_id: str, token_id: str, *, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    partner = registry.get(db, partner_id)
    counts = db.execute("SELECT count(CASE WHEN status = 'pending' THEN 1 END),"
                        " count(CASE WHEN status = 'delivered' THEN 1 END),"
                        " count(CASE WHEN status = 'dead' THEN 1 END) FROM deliveries WHERE partner_id = ?",
                        (partner_id,)).fetchone()
    last_seq = db.execute("SELECT next_seq - 1 FROM partners WHERE id = ?", (partner_id,)).fetchone()[0]
    sub = partner.subscription
    return {"partner": partner.id, "name": partner.name, "url": partner.url, "format": partner.format,
            "content_type": partner.content_type, "state": state_of(partner),
            "disabled_reason": None if partner.enabled else partner.disabled_reason,
            "disabled_at": partner.disabled_at, "last_seq": last_seq,
            "pending": counts[0], "delivered": counts[1], "dead": counts[2],
            "subscription": {"categories": list(sub.categories or ()), "languages": list(sub.languages or ()),
                             "max_urgency": sub.max_urgency, "event_types": list(sub.event_types or ()),
                             "embargoed": sub.embargoed},
            **signing_state(partner, now), "token_id": token_id}


def signing_state(partner: registry.Partner, now: float) -> dict:
    """How many secrets sign now, and until when a rotation's previous one does (None: it is
    not signing, or until the rotation is ended)."""
    signing = partner.signing_secrets(now)
    return {"signing_secrets": len(signing),
            "previous_secret_until": partner.previous_secret_until if len(signing) == 2 else None}


def _shown(row, attempts: list[dict], now: float) -> dict:
    if _scheduled(row, now):
        return {"seq": row["seq"], "status": "scheduled"}
    return {"seq": row["seq"], "event_id": row["event_id"], "article_id": row["article_id"],
            "version": row["version"], "event_type": row["event_type"], "status": row["status"],
            "tries": row["tries"], "created_at": row["created_at"], "delivered_at": row["delivered_at"],
            "next_attempt_at": row["next_attempt_at"] if row["status"] == "pending" else None,
            "last_status": row["last_status"], "last_error": row["last_error"], "attempts": attempts}


def _attempts(db: Db, delivery_ids: list[int]) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {i: [] for i in delivery_ids}
    for r in db.select_in("SELECT delivery_id, attempt, at, status_code, duration_ms, error, outcome,"
                          " next_attempt_at FROM attempts WHERE delivery_id IN (...) ORDER BY id", delivery_ids):
        found[r["delivery_id"]].append({"attempt": r["attempt"], "at": r["at"], "status": r["status_code"],
                                        "error": r["error"], "duration_ms": r["duration_ms"],
                                        "outcome": r["outcome"], "next_attempt_at": r["next_attempt_at"]})
    return found


def deliveries(db: Db, partner_id: str, *, after_seq: int = 0, limit: int = 100,
               now: float | None = None) -> dict:
    """The partner's deliveries with a sequence number above ``after_seq``, in order, each with
    every attempt's answer; ``next_after_seq`` pages on (None at the end)."""
    now = time.time() if now is None else now
    rows = db.execute(f"SELECT {_DELIVERY} FROM deliveries WHERE partner_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                      (partner_id, after_seq, limit + 1)).fetchall()
    more, rows = len(rows) > limit, rows[:limit]
    attempts = _attempts(db, [r["id"] for r in rows if not _scheduled(r, now)])
    return {"deliveries": [_shown(r, attempts.get(r["id"], []), now) for r in rows],
            "next_after_seq": rows[-1]["seq"] if more else None}


def delivery(db: Db, partner_id: str, seq: int, *, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    row = db.execute(f"SELECT {_DELIVERY} FROM deliveries WHERE partner_id = ? AND seq = ?",
                     (partner_id, seq)).fetchone()
    if row is None:
        raise NotFound(f"seq: you have no delivery numbered {seq}")
    return _shown(row, _attempts(db, [row["id"]])[row["id"]], now)


def gaps(db: Db, partner_id: str, *, now: float | None = None) -> dict:
    """The numbers not acknowledged (yet): pending, dead, or scheduled for later; and how many
    are below the highest acknowledged one (holes the partner sees now)."""
    now = time.time() if now is None else now
    highest = db.execute("SELECT max(seq) FROM deliveries WHERE partner_id = ? AND status = 'delivered'",
                         (partner_id,)).fetchone()[0] or 0
    shown = []
    for r in receipts.gaps(db, partner_id):
        if _scheduled(r, now):
            shown.append({"seq": r["seq"], "status": "scheduled"})
        else:
            shown.append({"seq": r["seq"], "event_id": r["event_id"], "article_id": r["article_id"],
                          "version": r["version"], "event_type": r["event_type"], "status": r["status"],
                          "tries": r["tries"], "last_status": r["last_status"], "last_error": r["last_error"]})
    return {"highest_delivered_seq": highest, "below_highest": sum(g["seq"] < highest for g in shown),
            "gaps": shown}


def resend(db: Db, partner_id: str, low: int, high: int) -> list[int]:
    """Send these numbers again (original numbers, webhook-ids, bodies; a scheduled one still
    waits for its time)."""
    if high - low + 1 > MAX_RESEND:
        raise ValueError(f"seq: at most {MAX_RESEND} numbers at a time, asked for {high - low + 1}")
    seqs = receipts.resend(db, partner_id, low, high)
    if not seqs:
        raise NotFound(f"seq: you have no deliveries numbered {low}-{high}")
    return seqs


def pause(db: Db, partner_id: str) -> dict:
    partner = registry.get(db, partner_id)
    if not partner.enabled and partner.disabled_reason != PAUSE_REASON:
        raise Conflict(f"the agency disabled your pushes ({partner.disabled_reason or 'by an operator'}): "
                       "ask the agency to enable them")
    partner = registry.disable(db, partner_id, PAUSE_REASON)
    return {"state": "paused", "paused_at": partner.disabled_at}


def resume(db: Db, partner_id: str) -> dict:
    """Push again; stories published while paused were not queued: a backfill since
    ``paused_at`` sends them."""
    partner = registry.get(db, partner_id)
    if partner.enabled:
        return {"state": "enabled", "was": "enabled"}
    if partner.disabled_reason != PAUSE_REASON:
        raise Conflict(f"the agency disabled your pushes ({partner.disabled_reason or 'by an operator'}): "
                       "only the agency can enable them")
    was = registry.enable(db, partner_id)
    return {"state": "enabled", "was": "paused", "paused_at": was.disabled_at,
            "missed": "stories published while paused were not queued: POST /v1/backfill with since = paused_at"}


def rotate_secret(db: Db, partner_id: str, overlap_s: float = registry.DEFAULT_OVERLAP_S) -> dict:
    """A new signing secret, shown once; the old one goes on signing beside it for
    ``overlap_s`` (0: not at all), or until :func:`end_rotation` (a second rotation drops the
    oldest)."""
    now = time.time()
    partner = registry.rotate_secret(db, partner_id, overlap_s=overlap_s, now=now)
    return {"secret": partner.secrets[0], **signing_state(partner, now)}


def end_rotation(db: Db, partner_id: str) -> dict:
    partner = registry.rotate_secret(db, partner_id, drop_old=True)
    return signing_state(partner, time.time())


def own_tokens(db: Db, partner_id: str, *, now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    return [t.public(now) for t in tokens.listed(db, partner_id)]


def rotate_token(db: Db, partner_id: str, token_id: str, overlap_s: float) -> dict:
    token = tokens.get(db, token_id)
    if token is None or token.partner_id != partner_id:  # the middleware's token: never another's
        raise NotFound(f"token: no token {token_id!r}")
    issued = tokens.rotate(db, token_id, overlap_s=overlap_s)
    return {"token": issued.secret, "id": issued.token.id, "old_token_id": token_id,
            "old_token_valid_until": time.time() + overlap_s}


def revoke_token(db: Db, partner_id: str, token_id: str) -> dict:
    return tokens.revoke(db, token_id, partner_id=partner_id).public(time.time())


def audit_log(db: Db, partner_id: str, *, before_id: int | None, limit: int) -> dict:
    rows = audit.read(db, partner_id, before_id=before_id, limit=limit)
    return {"entries": rows, "next_before_id": rows[-1]["id"] if len(rows) == limit else None}


def seqs_said(seqs: Iterable[int]) -> str:
    seqs = list(seqs)
    return f"{len(seqs)} deliveries" + (f" ({seqs[0]}-{seqs[-1]})" if seqs else "")
