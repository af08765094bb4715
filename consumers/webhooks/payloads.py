"""The body of a delivery, in the partner's format, rendered once at enqueue time by the
formats' pure renderers (so every attempt of a delivery sends the very same bytes).

- ``ninjs``: a Standard Webhooks style JSON envelope ``{"type": "article.<event type>",
  "timestamp": <when the version was made>, "sequence": <the partner's sequence number>,
  "data": <the ninjs 3.1 item>}``; ``ninjs2``: the same envelope around the ninjs 2.2 item.
- ``newsml``: a NewsML-G2 ``newsMessage`` whose ``header/transmitId`` is the sequence number,
  carrying the text ``newsItem`` (and its picture items).
- ``rss``: the RSS ``<item>`` of the event.

What each format's delivery carries is its entry's ``push`` in :mod:`newswire.formats.registry`
(an ``envelope``, a ``message`` or the ``item``), so a new format needs nothing here.
"""

from __future__ import annotations

from datetime import datetime

from newswire.codec import ArticleEvent
from newswire.formats import kept, ninjs
from newswire.formats import registry as formats
from newswire.formats.kept import Renders


class Renderer:
    """The payloads of one event for its partners. The bytes of the event in each format are
    made once and kept (:mod:`newswire.formats.kept`: the process's renders for ``authority``
    unless ``renders`` is given), whatever the number of partners and of renumberings; only
    the envelope or message around them is made per delivery. ``authority``: the
    installation's id authority (Settings.authority())."""

    def __init__(self, event: ArticleEvent, *, at: datetime, authority: str, renders: Renders | None = None):
        self.event = event
        self.at = at
        self.renders = renders or kept.shared(authority)

    def __call__(self, fmt: str, *, seq: int) -> bytes:
        event, found = self.event, formats.get(fmt)
        if found.push == "message":
            return self.renders.feed([event], found, formats.Channel(updated=self.at, transmit_id=str(seq)))
        item = self.renders.item(event, found)
        if found.push == "item":
            return item
        head = ninjs.dumps({"type": f"article.{event['event_type']}", "timestamp": ninjs_time(event["occurred_at"]),
                            "sequence": seq})[:-1]
        return head + b',"data":' + item + b"}"


def render(event: ArticleEvent, fmt: str, *, seq: int, at: datetime, authority: str) -> bytes:
    """``event`` as the bytes partner format ``fmt`` receives; ``at`` is the enqueue time."""
    return Renderer(event, at=at, authority=authority)(fmt, seq=seq)


def ninjs_time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
