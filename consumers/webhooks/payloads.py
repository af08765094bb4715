"""The body of a delivery, in the partner's format, rendered once at enqueue time by the
formats' pure renderers (so every attempt of a delivery sends the very same bytes).

- ``ninjs``: a Standard Webhooks style JSON envelope ``{"type": "article.<event type>",
  "timestamp": <when the version was made>, "sequence": <the partner's sequence number>,
  "data": <the ninjs 3.1 item>}``.
- ``newsml``: a NewsML-G2 ``newsMessage`` whose ``header/transmitId`` is the sequence number,
  carrying the text ``newsItem`` (and its picture items).
- ``rss``: the RSS ``<item>`` of the event.

What each format's delivery carries is its entry's ``push`` in :mod:`newswire.formats.registry`
(an ``envelope``, a ``message`` or the ``item``), so a new format needs nothing here.
"""

from __future__ import annotations

from datetime import datetime

from newswire.codec import ArticleEvent
from newswire.formats import ninjs
from newswire.formats import registry as formats


class Renderer:
    """The payloads of one event for its partners: what does not depend on the partner (the
    item of an envelope, an item) is rendered once, whatever the number of partners.
    ``authority``: the installation's id authority (Settings.authority())."""

    def __init__(self, event: ArticleEvent, *, at: datetime, authority: str):
        self.event = event
        self.at = at
        self.authority = authority
        #: format name → what does not depend on the sequence number
        self._made: dict[str, bytes | tuple[bytes, bytes]] = {}

    def __call__(self, fmt: str, *, seq: int) -> bytes:
        event, found = self.event, formats.get(fmt)
        if found.push == "message":
            return found.feed([event], formats.Channel(updated=self.at, transmit_id=str(seq)), self.authority)
        made = self._made.get(found.name)
        if made is None:
            item = found.item(event, self.authority)
            if found.push == "envelope":  # the envelope around the number, serialised once
                head = ninjs.dumps({"type": f"article.{event['event_type']}",
                                    "timestamp": ninjs_time(event["occurred_at"])})[:-1]
                item = (head + b',"sequence":', b',"data":' + item + b"}")
            made = self._made[found.name] = item
        if isinstance(made, tuple):
            before, after = made
            return before + str(seq).encode() + after
        return made


def render(event: ArticleEvent, fmt: str, *, seq: int, at: datetime, authority: str) -> bytes:
    """``event`` as the bytes partner format ``fmt`` receives; ``at`` is the enqueue time."""
    return Renderer(event, at=at, authority=authority)(fmt, seq=seq)


def ninjs_time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
