"""Standard Webhooks headers, signed with the official ``standardwebhooks`` package.

``webhook-id`` is the event id (the same on every attempt, retry, redrive and replay: the
partner's idempotency key), ``webhook-timestamp`` the time of this attempt, and
``webhook-signature`` ``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` for each of the
partner's secrets, space-separated: during a secret rotation the partner can verify with
either its old or its new secret.
"""

from __future__ import annotations

import base64
import functools
import secrets as _secrets
from datetime import datetime, timezone
from typing import Sequence

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SEQUENCE_HEADER = "newswire-sequence"


def new_secret() -> str:
    """A fresh signing secret in Standard Webhooks' ``whsec_<base64>`` form (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    """Return ``secret`` if it is a usable ``whsec_`` secret; raise ValueError naming the problem."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"secret: must start with {SECRET_PREFIX!r}")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except ValueError as exc:
        raise ValueError(f"secret: not base64 after {SECRET_PREFIX!r}: {exc}") from exc
    if len(raw) < 24:
        raise ValueError(f"secret: {len(raw)} bytes is too short (at least 24)")
    return secret


@functools.lru_cache(maxsize=65536)
def _signer(secret: str) -> Webhook:
    """A partner's signer, made once (it decodes the secret)."""
    return Webhook(secret)


def headers(event_id: str, body: bytes, secrets: Sequence[str], *, content_type: str,
            seq: int | None = None, at: datetime | None = None) -> dict[str, str]:
    """The headers of one attempt to deliver ``body``."""
    at = (at or datetime.now(timezone.utc)).replace(microsecond=0)
    text = body.decode("utf-8")
    signatures = " ".join(_signer(secret).sign(event_id, at, text) for secret in secrets)
    result = {
        "content-type": content_type,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
    if seq is not None:
        result[SEQUENCE_HEADER] = str(seq)
    return result
