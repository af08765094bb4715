"""The body of a delivery, in the partner's format, rendered once at enqueue time by the
formats' pure renderers (so every attempt of a delivery sends the very same bytes).

- ``ninjs``: a Standard Webhooks style JSON envelope ``{"type": "article.<event type>",
  "timestamp": <when the version was made>, "sequence": <the partner's sequence number>,
  "data": <the ninjs 3.1 item>}``.
- ``newsml``: a NewsML-G2 ``newsMessage`` whose ``header/transmitId`` is the sequence number,
  carrying the text ``newsItem`` (and its picture items).
- ``rss``: the RSS ``<item>`` of the event.
"""

from __future__ import annotations

from datetime import datetime

from newswire.codec import ArticleEvent
from newswire.formats import newsml, ninjs


#: stands for the sequence number while a body is rendered once for every partner of its format
_NUMBER_MARK = "NEWSWIRESEQUENCENUMBER"


class Renderer:
    """The payloads of one event for its partners, each format rendered once whatever the
    number of partners: a body is kept as the bytes before and after the sequence number (ninjs
    ``"sequence"``, NewsML-G2 ``transmitId``; an RSS item carries none), and each delivery only
    puts its number in. ``authority``: the installation's id authority (Settings.authority())."""

    def __init__(self, event: ArticleEvent, *, at: datetime, authority: str):
        self.event = event
        self.at = at
        self.authority = authority
        self._parts: dict[str, tuple[bytes, bytes | None]] = {}

    def __call__(self, fmt: str, *, seq: int) -> bytes:
        return numbered(*self.parts(fmt), seq)

    def parts(self, fmt: str) -> tuple[bytes, bytes | None]:
        """The body of ``fmt`` before and after its sequence number, or (body, None) for a body
        without one; rendered on the first call (ValueError when the event cannot be)."""
        if fmt not in self._parts:
            self._parts[fmt] = self._render(fmt)
        return self._parts[fmt]

    def _render(self, fmt: str) -> tuple[bytes, bytes | None]:
        """The body around its sequence number, or (body, None) for a body without one."""
        event = self.event
        if fmt == "ninjs":
            head = ninjs.dumps({"type": f"article.{event['event_type']}",
                                "timestamp": ninjs_time(event["occurred_at"])})[:-1]
            data = ninjs.dumps(ninjs.item(event, authority=self.authority))
            return head + b',"sequence":', b',"data":' + data + b"}"
        if fmt == "newsml":
            body = newsml.news_message([event], sent=self.at, transmit_id=_NUMBER_MARK, authority=self.authority)
            before, mark, after = body.partition(_NUMBER_MARK.encode())
            if not mark or _NUMBER_MARK.encode() in after:  # the mark stands once, in transmitId
                raise ValueError("transmitId: the sequence number has no single place in the newsMessage")
            return before, after
        if fmt == "rss":
            from newswire.formats import rss  # written by the formats part
            return rss.item_bytes(event, authority=self.authority), None
        raise ValueError(f"format: unknown partner format {fmt!r}")


def numbered(head: bytes, tail: bytes | None, seq: int) -> bytes:
    """A body with its sequence number put in (a body without a place for one is ``head``)."""
    return head if tail is None else head + str(seq).encode() + tail


def render(event: ArticleEvent, fmt: str, *, seq: int, at: datetime, authority: str) -> bytes:
    """``event`` as the bytes partner format ``fmt`` receives; ``at`` is the enqueue time."""
    return Renderer(event, at=at, authority=authority)(fmt, seq=seq)


def ninjs_time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
