"""The event contract every part shares: what an article id is, which event types exist and
what they mean, and when a version becomes visible (the embargo rule).

Producers check what they write against it and every consumer (feeds, drop folders, webhooks,
archive, replay) and the renderers read events by it, so that no two parts can disagree.

* **Article id**: :data:`ARTICLE_ID` (1 to 128 of ``a-z A-Z 0-9 . _ : -``); the Kafka key,
  safe in a file name and a URL path. Versions run from 1 to :data:`MAX_VERSION`.
* **Event types**: :data:`EVENT_TYPES`, the symbols of the ``EventType`` enum of the newest
  Avro schema in ``schemas/`` (read from it, never written out here). An event whose type is
  not one of them is **refused**: :func:`check_event_type` raises ``ValueError`` naming the
  field, so a consumer sends it to the dead-letter topic with that reason (it is never read as
  some other type). Events decoded by :mod:`newswire.codec` always carry a known symbol: a
  writer schema is only read when it ships in ``schemas/``, and Avro's own enum default applies
  only to symbols a newer shipped schema adds. :data:`ENDINGS` are the types after which a
  story must not be used (kill, withdrawal); :data:`FOLLOW_UPS` those that go to whoever had
  the story, whatever their subscription.
* **Visibility**: a version becomes public at :func:`visible_at`, the later of its
  ``occurred_at`` and its ``embargo_until``; :func:`embargoed` says whether that is still
  ahead at a given instant (an embargo that ends exactly at ``now`` has ended).
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any, Mapping

from newswire import codec

ARTICLE_ID = re.compile(r"[a-zA-Z0-9._:-]{1,128}")
ARTICLE_ID_PROBLEM = "must be 1 to 128 characters of a-z, A-Z, 0-9, '.', '_', ':' or '-'"
#: the highest version an article can have (the schema's ``int``)
MAX_VERSION = 2**31 - 1


@functools.cache
def _event_types() -> tuple[str, ...]:
    field = next(f for f in codec.latest().parsed["fields"] if f["name"] == "event_type")
    return tuple(field["type"]["symbols"])


#: every event type, in the schema's order (the ``EventType`` enum of the newest schema)
EVENT_TYPES: tuple[str, ...] = _event_types()
#: after these a story must not be used: out of RSS/Atom, canceled/withheld elsewhere
ENDINGS = frozenset({"killed", "withdrawn"})
#: these go to every partner that received the story, whatever its subscription says now
FOLLOW_UPS = frozenset({"corrected", *ENDINGS})
if not ENDINGS | FOLLOW_UPS <= set(EVENT_TYPES):  # the schema is the authority: fail at import, not later
    raise RuntimeError(f"schema event types {EVENT_TYPES} lack {sorted((ENDINGS | FOLLOW_UPS) - set(EVENT_TYPES))}")


def check_article_id(value: object) -> str:
    """``value`` when it is an article id; ``ValueError`` naming the field otherwise."""
    if not isinstance(value, str) or not ARTICLE_ID.fullmatch(value):
        raise ValueError(f"article_id: {str(value)[:140]!r} {ARTICLE_ID_PROBLEM}")
    return value


def check_event_type(value: object) -> str:
    """``value`` when it is an event type of the schema; ``ValueError`` naming the field otherwise
    (an unknown type is refused, never read as another one: see module doc)."""
    if value not in EVENT_TYPES:
        raise ValueError(f"event_type: {str(value)[:40]!r} is not one of {', '.join(EVENT_TYPES)}")
    return value  # type: ignore[return-value]


def check(event: Mapping[str, Any]) -> None:
    """``ValueError`` naming the field unless ``event`` has an article id, a version >= 1, an
    event type of the schema and time-zone-aware ``occurred_at`` and ``first_created``: what
    every consumer relies on before it keeps or sends an event."""
    article_id = check_article_id(event.get("article_id"))
    version = event.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise ValueError(f"version: {version!r} of article {article_id} is not an integer from 1 to {MAX_VERSION}")
    check_event_type(event.get("event_type"))
    for name in ("occurred_at", "first_created"):
        value = event.get(name)
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError(f"{name}: {value!r} is not a timezone-aware datetime")


def visible_at(event: Mapping[str, Any]) -> datetime:
    """When a version becomes public: its creation, or the end of its embargo if later."""
    until = event.get("embargo_until")
    return max(event["occurred_at"], until) if until else event["occurred_at"]


def embargoed(until: datetime | None, now: datetime) -> bool:
    """Whether an embargo ending at ``until`` (None: no embargo) still holds at ``now``."""
    return until is not None and until > now


def is_embargoed(event: Mapping[str, Any], now: datetime) -> bool:
    """Whether ``event`` must not be public yet at ``now`` (its embargo ends after ``now``)."""
    return embargoed(event.get("embargo_until"), now)


#: the fields a partner's routing reads: which partners get an event and in what order
#: (:func:`newswire.consumers.webhooks.filters.decide`, the replay's order and endings rules)
ROUTING_FIELDS = ("event_id", "article_id", "version", "event_type", "categories", "language", "urgency",
                  "embargo_until")


def routing(event: Mapping[str, Any]) -> dict[str, Any]:
    """``event`` cut down to its :data:`ROUTING_FIELDS`: what a process that only routes an
    event (a replay's queueing, beside the process that renders it) needs of it."""
    return {name: event.get(name) for name in ROUTING_FIELDS}
