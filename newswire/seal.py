"""The cleaning seal: how a consumer tells an event newswire's producer cleaned from one that
bypassed it.

The producer cleans every event it writes (:mod:`newswire.sanitize`: plain text, single
lines, the body sanitised) and, when the installation has a key (``NEWSWIRE_CLEAN_KEY``,
shared by the producers and every consumer), seals it: the Kafka header :data:`HEADER` holds
``v2=`` and the HMAC-SHA256, under that key, of the record's whole value (the single-object
payload, so every field the cleaning touched is covered, and ``word_count``, which the producer
counts by the renderers' rule, :func:`newswire.sanitize.word_count`: a change of that rule is a
new seal version (v2: words are broken at block tags too; a v1 seal, whose count ran the last
word of a paragraph into the next one's first, no longer verifies, so those events are cleaned
and counted again). A consumer that reads the record
verifies the seal (:func:`verified`, in constant time) and marks the decoded event
(:func:`mark`); :func:`newswire.formats.prepare` skips cleaning only an event so marked, and
cleans every other event as before. An event written to the topic by anyone else (no header,
a forged or copied one, a payload changed after sealing, another key) is not marked, so it
never puts active content into any output.

The mark is the key :data:`MARK` in the event's dict. It cannot come from the topic: Avro
field names are ``[A-Za-z_][A-Za-z0-9_]*``, so no decoded record holds a key with a colon.
"""

from __future__ import annotations

import hmac
from typing import Iterable

from newswire.codec import ArticleEvent
from newswire.keyed_hash import hmac_sha256

#: the Kafka header of the seal
HEADER = "clean_seal"
#: the key in a decoded event's dict that says its seal verified (no Avro field can be named so)
MARK = "newswire:cleaned"
_VERSION = b"v2="


def seal(payload: bytes, key: str) -> bytes:
    """The :data:`HEADER` value sealing ``payload`` (a record value) under ``key``."""
    return _VERSION + hmac_sha256(key.encode(), payload).hex().encode()


def verified(payload: bytes, headers: Iterable[tuple[str, bytes]] | None, key: str | None) -> bool:
    """Whether ``headers`` hold a seal of ``payload`` under ``key`` (False without a key)."""
    if not key or payload is None:
        return False
    given = next((value for name, value in headers or () if name == HEADER), None)
    return given is not None and hmac.compare_digest(given, seal(payload, key))


def mark(event: ArticleEvent, payload: bytes, headers: Iterable[tuple[str, bytes]] | None,
         key: str | None) -> ArticleEvent:
    """``event`` (decoded from ``payload``), marked clean when its seal verifies; returned."""
    return mark_verified(event) if verified(payload, headers, key) else event


def mark_verified(event: ArticleEvent) -> ArticleEvent:
    """``event`` marked clean, its seal known to have verified; returned. :func:`mark` uses it
    for a record it has just checked; a reader that recorded the check when it first read the
    event (the archive's ``cleaned`` index column) uses it on the event it reads back."""
    event[MARK] = True
    return event


def is_clean(event: ArticleEvent) -> bool:
    """Whether ``event`` was marked by :func:`mark` (its producer's cleaning is trusted)."""
    return event.get(MARK) is True
