"""Which events a partner gets: a pure function of its subscription, the event and what the
partner was already sent of that article.

- A story (published, updated, corrected) goes to a partner whose subscription matches it:
  categories (any in common), languages (``en`` also takes ``en-GB``), urgency (1 = flash
  … 9; ``max_urgency`` N takes 1..N) and event types; every criterion left empty matches all.
- A correction, kill or withdrawal of an article goes to every partner that was sent ANY
  version of it, whatever its subscription says now, even while the partner is disabled
  (it is held until the partner is enabled again): a partner must never keep running a
  story that was killed.
- Nothing goes after a kill, and nothing older than (or equal to) what was already sent.
- An embargoed story goes at once to partners entitled to embargoed material, and to the
  others when the embargo lifts (``not_before``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Mapping

from newswire.events import ENDINGS, EVENT_TYPES, FOLLOW_UPS, embargoed


@dataclass(frozen=True)
class Subscription:
    """What a partner subscribes to; empty criteria match everything."""

    categories: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    max_urgency: int | None = None
    event_types: tuple[str, ...] = ()
    #: entitled to embargoed stories before the embargo lifts
    embargoed: bool = False

    def __post_init__(self) -> None:
        if self.max_urgency is not None and not 1 <= self.max_urgency <= 9:
            raise ValueError(f"max_urgency: must be 1 (flash) to 9, got {self.max_urgency}")
        unknown = set(self.event_types) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"event_types: unknown {sorted(unknown)}; known: {', '.join(EVENT_TYPES)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Subscription":
        data = json.loads(text)
        return cls(categories=tuple(data.get("categories", ())), languages=tuple(data.get("languages", ())),
                   max_urgency=data.get("max_urgency"), event_types=tuple(data.get("event_types", ())),
                   embargoed=bool(data.get("embargoed", False)))

    def describe(self) -> str:
        parts = [f"categories={','.join(self.categories) or '*'}", f"languages={','.join(self.languages) or '*'}",
                 f"max_urgency={self.max_urgency or '*'}", f"event_types={','.join(self.event_types) or '*'}",
                 f"embargoed={'yes' if self.embargoed else 'no'}"]
        return " ".join(parts)


@dataclass(frozen=True)
class History:
    """What a partner was already sent (or has queued) of one article."""

    max_version: int | None = None
    killed: bool = False

    @property
    def received(self) -> bool:
        return self.max_version is not None


@dataclass(frozen=True)
class Decision:
    deliver: bool
    reason: str
    #: not before this instant (an embargo the partner is not entitled to break)
    not_before: datetime | None = field(default=None)


def _language_matches(wanted: str, language: str) -> bool:
    wanted, language = wanted.lower(), language.lower()
    return language == wanted or ("-" not in wanted and language.split("-")[0] == wanted)


def mismatch(sub: Subscription, event: Mapping[str, Any]) -> str | None:
    """Why the subscription does not take this event, or None when it does."""
    if sub.event_types and event["event_type"] not in sub.event_types:
        return f"event type {event['event_type']} not subscribed"
    if sub.categories and not {c.lower() for c in sub.categories} & {c.lower() for c in event.get("categories") or ()}:
        return "no subscribed category"
    if sub.languages and not any(_language_matches(w, event["language"]) for w in sub.languages):
        return f"language {event['language']} not subscribed"
    if sub.max_urgency is not None and event["urgency"] > sub.max_urgency:
        return f"urgency {event['urgency']} above {sub.max_urgency}"
    return None


def decide(sub: Subscription, event: Mapping[str, Any], history: History, *, enabled: bool,
           now: datetime) -> Decision:
    """Whether (and from when) this partner gets this event; of ``event`` it reads only its
    :data:`~newswire.events.ROUTING_FIELDS`."""
    if history.killed:
        return Decision(False, "article was killed for this partner")
    if history.received and event["version"] <= history.max_version:
        return Decision(False, f"version {event['version']} not newer than {history.max_version} already queued")
    if history.received and event["event_type"] in FOLLOW_UPS:
        return Decision(True, f"{event['event_type']} of an article the partner received")
    if not enabled:
        return Decision(False, "partner disabled")
    if event["event_type"] in ENDINGS:
        return Decision(False, f"{event['event_type']} of an article the partner never received")
    why_not = mismatch(sub, event)
    if why_not:
        return Decision(False, why_not)
    embargo = event.get("embargo_until")
    if embargoed(embargo, now) and not sub.embargoed:
        return Decision(True, "subscribed; held until the embargo lifts", not_before=embargo)
    return Decision(True, "subscribed")
