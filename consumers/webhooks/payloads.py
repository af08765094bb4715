"""The body of a delivery, in the partner's format, rendered once at enqueue time by the
formats' pure renderers (so every attempt of a delivery sends the very same bytes).

- ``ninjs``: a Standard Webhooks style JSON envelope ``{"type": "article.<event type>",
  "timestamp": <when the version was made>, "sequence": <the partner's sequence number>,
  "data": <the ninjs 3.1 item>}``; ``ninjs2``: the same envelope around the ninjs 2.2 item.
- ``newsml``: a NewsML-G2 ``newsMessage`` whose ``header/transmitId`` is the sequence number,
  carrying the text ``newsItem`` (and its picture items).
- ``rss``: the RSS ``<item>`` of the event.
"""

from __future__ import annotations

from datetime import datetime

from newswire.codec import ArticleEvent
from newswire.formats import newsml, ninjs, ninjs2

#: the ninjs formats: name -> the renderer of the item in the envelope
NINJS = {"ninjs": ninjs.item, "ninjs2": ninjs2.item}


class Renderer:
    """The payloads of one event for its partners: what does not depend on the partner (the
    ninjs item) is rendered once, whatever the number of partners. ``authority``: the
    installation's id authority (Settings.authority())."""

    def __init__(self, event: ArticleEvent, *, at: datetime, authority: str):
        self.event = event
        self.at = at
        self.authority = authority
        self._ninjs: dict[str, tuple[bytes, bytes]] = {}

    def __call__(self, fmt: str, *, seq: int) -> bytes:
        event = self.event
        if fmt in NINJS:
            if fmt not in self._ninjs:  # the envelope around the number, serialised once
                head = ninjs.dumps({"type": f"article.{event['event_type']}",
                                    "timestamp": ninjs_time(event["occurred_at"])})[:-1]
                data = ninjs.dumps(NINJS[fmt](event, authority=self.authority))
                self._ninjs[fmt] = (head + b',"sequence":', b',"data":' + data + b"}")
            before, after = self._ninjs[fmt]
            return before + str(seq).encode() + after
        if fmt == "newsml":
            return newsml.news_message([event], sent=self.at, transmit_id=str(seq), authority=self.authority)
        if fmt == "rss":
            from newswire.formats import rss  # written by the formats part
            return rss.item_bytes(event, authority=self.authority)
        raise ValueError(f"format: unknown partner format {fmt!r}")


def render(event: ArticleEvent, fmt: str, *, seq: int, at: datetime, authority: str) -> bytes:
    """``event`` as the bytes partner format ``fmt`` receives; ``at`` is the enqueue time."""
    return Renderer(event, at=at, authority=authority)(fmt, seq=seq)


def ninjs_time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
