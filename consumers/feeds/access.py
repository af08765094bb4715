"""Partner tokens of the feed server: who a token is, which feeds it reads, whether it sees embargoes.

Configured either by ``NEWSWIRE_FEED_TOKENS="partner:token,partner2:token2"`` (each partner
reads every feed and sees embargoed items) or by a JSON file named in
``NEWSWIRE_FEED_TOKENS_FILE``::

    {"acme": {"token": "…", "feeds": ["all", "category-politics"], "embargoed": true},
     "blog": {"token": "…", "feeds": ["lang-en"], "embargoed": false}}

Tokens are compared in constant time, and every configured token is compared on each
lookup so that the time taken does not say which partner came close.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .view import FEED_NAME, Audience

PARTNER = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Partner:
    audience: Audience
    token: bytes


class Tokens:
    """The partner token store."""

    def __init__(self, partners: Mapping[str, Partner] | None = None):
        self._partners = dict(partners or {})

    def __len__(self) -> int:
        return len(self._partners)

    @classmethod
    def parse(cls, spec: str) -> "Tokens":
        """``"partner:token,…"``: each partner reads every feed and sees embargoed items."""
        partners = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, token = part.partition(":")
            if not sep:
                raise ValueError(f"NEWSWIRE_FEED_TOKENS: {name!r} is not partner:token")
            partners[name] = _partner(name, token, None, True)
        return cls(partners)

    @classmethod
    def load(cls, path: Path) -> "Tokens":
        """The JSON file described in the module doc."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: must be a JSON object of partner -> {{token, feeds, embargoed}}")
        partners = {}
        for name, entry in data.items():
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: partner {name!r} must be an object")
            feeds = entry.get("feeds")
            if feeds is not None and not (isinstance(feeds, list) and all(isinstance(f, str) for f in feeds)):
                raise ValueError(f"{path}: feeds of partner {name!r} must be a list of feed names")
            partners[name] = _partner(name, entry.get("token"), feeds, bool(entry.get("embargoed", False)))
        return cls(partners)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Tokens":
        if environ.get("NEWSWIRE_FEED_TOKENS_FILE"):
            return cls.load(Path(environ["NEWSWIRE_FEED_TOKENS_FILE"]))
        return cls.parse(environ.get("NEWSWIRE_FEED_TOKENS", ""))

    def audience(self, token: str, partner: str | None = None) -> Audience | None:
        """The audience ``token`` authenticates (as ``partner`` when given), or ``None``."""
        offered = token.encode()
        found = None
        for name, entry in self._partners.items():
            if hmac.compare_digest(offered, entry.token) and (partner is None or partner == name):
                found = entry.audience
        return found


def _partner(name: str, token: object, feeds: list[str] | None, embargoed: bool) -> Partner:
    if not PARTNER.fullmatch(name):
        raise ValueError(f"partner name {name!r}: use 1-64 of a-z, 0-9, '_' and '-'")
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"token of partner {name!r}: must be a string of at least {MIN_TOKEN_LENGTH} characters")
    for feed in feeds or ():
        if not FEED_NAME.fullmatch(feed):
            raise ValueError(f"feeds of partner {name!r}: {feed!r} is not a feed name (all, category-…, lang-…)")
    audience = Audience(name=name, feeds=None if feeds is None else frozenset(feeds), embargoed=embargoed)
    return Partner(audience, token.encode())
