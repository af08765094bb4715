"""What a partner missed while it was disabled: the events since a moment that its
subscription takes and it never got, by the same decisions a backfill makes (so never a
version of a story killed or withdrawn since: see :mod:`.targets`). Nothing is written."""

from __future__ import annotations

from dataclasses import dataclass

from newswire.config import Settings

from .sources import KafkaSource
from .targets import PartnerTarget
from .window import Window


@dataclass(frozen=True)
class Missed:
    #: events the partner would be sent by a backfill, and their articles
    events: int
    stories: int
    #: record timestamps (ms) of the first and the last of them
    first_ms: int | None
    last_ms: int | None
    #: events left out because their story was killed or withdrawn since
    withheld: int


def missed(settings: Settings, partner_id: str, since_ms: int) -> Missed:
    """What ``newswire partners backfill PARTNER --since <since_ms> --missed-only`` would queue.
    Raises :class:`~newswire.consumers.webhooks.partners.UnknownPartner`."""
    target = PartnerTarget(settings, partner_id, dry_run=True, missed_only=True)
    source = KafkaSource(settings, Window(since_ms, None))
    try:
        target.endings = source.endings()
        stamps, articles, withheld = [], set(), 0
        for item in source.items({}):
            outcome = target.offer(item)
            if outcome == "queued":
                stamps.append(item.timestamp_ms)
                articles.add(item.event["article_id"])
            withheld += outcome.startswith("withheld")
    finally:
        source.close()
        target.close()
    return Missed(len(stamps), len(articles), min(stamps, default=None), max(stamps, default=None), withheld)
