"""Standard Webhooks headers, signed as the official ``standardwebhooks`` package signs (its
secret decoding, the same HMAC; its ``verify`` is what the tests check them with).

``webhook-id`` is the event id (the same on every attempt, retry, redrive and replay: the
partner's idempotency key), ``webhook-timestamp`` the time of this attempt, and
``webhook-signature`` ``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` for each of the
partner's secrets that sign at that time (:meth:`.partners.Partner.signing_secrets`),
space-separated: during a secret rotation's overlap the partner can verify with either its
old or its new secret.
"""

from __future__ import annotations

import base64
import functools
import secrets as _secrets
import time
from datetime import datetime
from typing import Sequence

from newswire.keyed_hash import hmac_sha256


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
def _key(secret: str) -> bytes:
    """A secret's HMAC key, decoded once, as ``standardwebhooks.Webhook`` decodes it (padding
    added: unpadded base64 is accepted)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")


def signature(event_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """``webhook-signature``: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>`` per secret,
    space-separated. The very bytes ``Webhook.sign`` computes (tests check it), without its
    decoding of the body to text and back on every attempt."""
    signed = b"%s.%d.%s" % (event_id.encode(), timestamp, body)
    return " ".join("v1," + base64.b64encode(hmac_sha256(_key(secret), signed)).decode()
                    for secret in secrets)


def headers(event_id: str, body: bytes, secrets: Sequence[str], *, content_type: str,
            seq: int | None = None, at: datetime | None = None) -> dict[str, str]:
    """The headers of one attempt to deliver ``body``."""
    timestamp = int(at.timestamp()) if at is not None else int(time.time())
    result = {
        "content-type": content_type,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(event_id, timestamp, body, secrets),
    }
    if seq is not None:
        result[SEQUENCE_HEADER] = str(seq)
    return result
