"""Partner API tokens: the one writer of the ``partner_tokens`` table.

A token is ``nwp_`` and 43 URL-safe base64 characters (256 random bits), the prefix making
a leaked one recognisable (secret scanners, logs). Only its SHA-256 is kept: a copy of the
state gives nobody a token. It belongs to exactly one partner, and is valid until it
expires or is revoked. A rotation issues a new token and lets the old one live on for an
overlap (or ends it at once), so that a partner can roll its deployments over.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from newswire import logs
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.dialect import Db
from newswire.consumers.webhooks.outbox import transaction

log = logs.get(__name__)

PREFIX = "nwp_"
#: what a token looks like; anything else is refused without a look-up
SHAPE = re.compile(r"nwp_[A-Za-z0-9_-]{43}", re.ASCII)
#: the longest overlap a rotation gives the old token
MAX_OVERLAP_S = 7 * 86400
#: last_used_at is written at most this often per token (not on every request)
TOUCH_EVERY_S = 60.0

_COLUMNS = "id, partner_id, hint, label, created_at, expires_at, revoked_at, last_used_at, replaced_by"


@dataclass(frozen=True)
class Token:
    """A token as it is kept (without the token)."""

    id: str
    partner_id: str
    hint: str
    label: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    replaced_by: str | None

    def state(self, now: float) -> str:
        """active | expired | revoked."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def public(self, now: float) -> dict:
        """What the partner and operators are shown of it."""
        return {"id": self.id, "partner": self.partner_id, "hint": self.hint + "…", "label": self.label,
                "state": self.state(now), "created_at": self.created_at, "expires_at": self.expires_at,
                "revoked_at": self.revoked_at, "last_used_at": self.last_used_at, "replaced_by": self.replaced_by}


@dataclass(frozen=True)
class Issued:
    token: Token
    #: the token itself: shown once, never kept
    secret: str


def digest(presented: str) -> str:
    return hashlib.sha256(presented.encode("ascii")).hexdigest()


def issue(db: Db, partner_id: str, *, label: str = "", expires_at: float | None = None,
          now: float | None = None) -> Issued:
    """A new token for this partner (UnknownPartner if there is none)."""
    now = time.time() if now is None else now
    registry.get(db, partner_id)
    if len(label) > 100:
        raise ValueError("label: at most 100 characters")
    if expires_at is not None and expires_at <= now:
        raise ValueError("expires: must be in the future")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = Token(f"tok_{secrets.token_hex(6)}", partner_id, secret[:8], label, now, expires_at, None, None, None)
    db.execute(f"INSERT INTO partner_tokens ({_COLUMNS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (token.id, partner_id, token.hint, label, now, expires_at, None, None, None, digest(secret)))
    log.info("partner_token_issued", partner=partner_id, token_id=token.id, expires_at=expires_at)
    return Issued(token, secret)


def _of(row) -> Token:
    return Token(*(row[i] for i in range(9)))


def get(db: Db, token_id: str) -> Token | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM partner_tokens WHERE id = ?", (token_id,)).fetchone()
    return None if row is None else _of(row)


def listed(db: Db, partner_id: str | None = None) -> list[Token]:
    where, args = ("WHERE partner_id = ?", (partner_id,)) if partner_id else ("", ())
    return [_of(r) for r in db.execute(f"SELECT {_COLUMNS} FROM partner_tokens {where} ORDER BY created_at, id",
                                       args)]


def verify(db: Db, presented: str, *, now: float | None = None) -> Token | None:
    """The active token ``presented`` is, or None (a token of another shape is not looked up)."""
    now = time.time() if now is None else now
    if not SHAPE.fullmatch(presented):
        return None
    wanted = digest(presented)
    row = db.execute(f"SELECT {_COLUMNS}, hash FROM partner_tokens WHERE hash = ?", (wanted,)).fetchone()
    if row is None or not hmac.compare_digest(row["hash"], wanted):
        return None
    token = _of(row)
    if token.state(now) != "active":
        return None
    if token.last_used_at is None or token.last_used_at < now - TOUCH_EVERY_S:
        db.execute("UPDATE partner_tokens SET last_used_at = ? WHERE id = ?", (now, token.id))
    return token


def revoke(db: Db, token_id: str, *, partner_id: str | None = None, at: float | None = None) -> Token:
    """End a token now (or at ``at``; one already ended earlier stays so). ``partner_id``: only
    if it is this partner's (LookupError otherwise, as for no such token)."""
    at = time.time() if at is None else at
    token = get(db, token_id)
    if token is None or (partner_id is not None and token.partner_id != partner_id):
        raise LookupError(f"token: no token {token_id!r}" + (f" of partner {partner_id!r}" if partner_id else ""))
    db.execute("UPDATE partner_tokens SET revoked_at = ? WHERE id = ? AND (revoked_at IS NULL OR revoked_at > ?)",
               (at, token_id, at))
    log.info("partner_token_revoked", partner=token.partner_id, token_id=token_id, at=at)
    return get(db, token_id)  # type: ignore[return-value]


def rotate(db: Db, token_id: str, *, overlap_s: float, now: float | None = None) -> Issued:
    """A new token in place of this one, which stays valid ``overlap_s`` more (0: ends now)."""
    now = time.time() if now is None else now
    if not 0 <= overlap_s <= MAX_OVERLAP_S:
        raise ValueError(f"overlap_s: must be 0 to {MAX_OVERLAP_S} seconds, got {overlap_s:g}")
    with transaction(db):
        old = get(db, token_id)
        if old is None or old.state(now) != "active":
            raise LookupError(f"token: {token_id!r} is not an active token")
        new = issue(db, old.partner_id, label=old.label, expires_at=old.expires_at, now=now)
        db.execute("UPDATE partner_tokens SET replaced_by = ? WHERE id = ?", (new.token.id, token_id))
        revoke(db, token_id, at=now + overlap_s)
    log.info("partner_token_rotated", partner=old.partner_id, token_id=token_id, new_token_id=new.token.id,
             overlap_s=overlap_s)
    return new
