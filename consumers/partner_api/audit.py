"""The partner API's audit log: the one writer of the ``partner_audit`` table.

Every call to the partner API is one row, written after it was answered: when, by which
partner and token (none for a caller that did not authenticate), from which address, what
(method and route), the status answered, and a short detail (what it changed, or why it
was refused). A partner reads its own rows (``GET /v1/audit``); operators read them all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from newswire.consumers.webhooks.dialect import Db

#: the longest detail kept
DETAIL_CHARS = 500


@dataclass(frozen=True)
class Entry:
    partner_id: str | None
    token_id: str | None
    remote: str | None
    action: str
    status: int
    detail: str | None = None


def record(db: Db, entry: Entry, *, at: float | None = None) -> None:
    detail = entry.detail[:DETAIL_CHARS] if entry.detail else None
    db.execute("INSERT INTO partner_audit (at, partner_id, token_id, remote, action, status, detail)"
               " VALUES (?, ?, ?, ?, ?, ?, ?)",
               (time.time() if at is None else at, entry.partner_id, entry.token_id,
                (entry.remote or "")[:100] or None, entry.action[:200], entry.status, detail))


def read(db: Db, partner_id: str, *, before_id: int | None = None, limit: int = 100) -> list[dict]:
    """One partner's rows, newest first, below ``before_id`` (paging back)."""
    where, args = "partner_id = ?", [partner_id]
    if before_id is not None:
        where += " AND id < ?"
        args.append(before_id)
    rows = db.execute(f"SELECT id, at, token_id, remote, action, status, detail FROM partner_audit WHERE {where}"
                      " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    return [{key: row[key] for key in ("id", "at", "token_id", "remote", "action", "status", "detail")}
            for row in rows]


def count(db: Db, partner_id: str, action: str, *, status: int, since_at: float) -> int:
    """How many calls of ``action`` this partner made since then that were answered ``status``."""
    return db.execute("SELECT count(*) FROM partner_audit WHERE partner_id = ? AND action = ? AND status = ?"
                      " AND at >= ?", (partner_id, action, status, since_at)).fetchone()[0]
