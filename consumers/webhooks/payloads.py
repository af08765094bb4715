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
from pathlib import Path
from typing import Sequence

from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.formats import kept, ninjs
from newswire.formats import registry as formats
from newswire.formats.kept import Renders

#: stands for the sequence number while a body is rendered once for every partner of its format
_NUMBER_MARK = "NEWSWIRESEQUENCENUMBER"


class Renderer:
    """The payloads of one event for its partners, each format rendered once whatever the
    number of partners and of renumberings: the bytes of the event in each format are kept
    (:mod:`newswire.formats.kept`: the process's renders for ``authority`` unless ``renders``
    is given), and a body is kept as the bytes before and after the sequence number (ninjs
    ``"sequence"``, NewsML-G2 ``transmitId``; an RSS item or Atom entry carries none), so that
    each delivery only puts its number in. ``authority``: the installation's id authority
    (Settings.authority())."""

    def __init__(self, event: ArticleEvent, *, at: datetime, authority: str, renders: Renders | None = None):
        self.event = event
        self.at = at
        self.renders = renders or kept.shared(authority)
        self._parts: dict[str, tuple[bytes, bytes | None]] = {}

    def __call__(self, fmt: str, *, seq: int) -> bytes:
        return numbered(*self.parts(fmt), seq)

    def parts(self, fmt: str) -> tuple[bytes, bytes | None]:
        """The body of ``fmt`` before and after its sequence number, or (body, None) for a body
        without one; rendered on the first call (ValueError when the event cannot be)."""
        if fmt not in self._parts:
            self._parts[fmt] = self._render(formats.get(fmt))
        return self._parts[fmt]

    def _render(self, fmt: formats.Format) -> tuple[bytes, bytes | None]:
        event = self.event
        if fmt.push == "message":
            body = self.renders.feed([event], fmt, formats.Channel(updated=self.at, transmit_id=_NUMBER_MARK))
            before, mark, after = body.partition(_NUMBER_MARK.encode())
            if not mark or _NUMBER_MARK.encode() in after:  # the mark stands once, in transmitId
                raise ValueError("transmitId: the sequence number has no single place in the newsMessage")
            return before, after
        item = self.renders.item(event, fmt)
        if fmt.push == "item":
            return item, None
        head = ninjs.dumps({"type": f"article.{event['event_type']}",
                            "timestamp": ninjs_time(event["occurred_at"])})[:-1]
        return head + b',"sequence":', b',"data":' + item + b"}"


def kept_renders(settings: Settings) -> Path:
    """The file the bodies' renders are kept in (:mod:`newswire.formats.kept`, a cache that may
    be deleted at any time), by the live pusher and by replays alike: a backfill of a partner
    in a format renders nothing the live pushes to other partners in that format rendered.
    (Releases before 2026-12-04 kept a replay's only, in ``<home>/replay/renders.sqlite3``,
    which is no longer read and may be deleted.)"""
    return settings.home / "webhooks" / "renders.sqlite3"


def load_kept(renders: Renders, events: Sequence[ArticleEvent], fmt: str) -> None:
    """Bring what ``renders`` keep on disk of ``events``, as a :class:`Renderer` in ``fmt`` uses
    it (a newsMessage's fragment, any other format's item), into memory at once
    (:meth:`~newswire.formats.kept.Renders.load`)."""
    entry = formats.get(fmt)
    renders.load(events, entry, items=entry.push != "message")


def numbered(head: bytes, tail: bytes | None, seq: int) -> bytes:
    """A body with its sequence number put in (a body without a place for one is ``head``)."""
    return b"".join(pieces(head, tail, seq))


def pieces(head: bytes, tail: bytes | None, seq: int) -> tuple[bytes, ...]:
    """The body of :func:`numbered` as the pieces it is made of: the event's shared bytes and
    the number between them. The pusher keeps a delivery in flight as its pieces, not as its
    own copy of the body: a flash to 10,000 partners holds one body per event and format, not
    10,000 (they are joined only for the moment of signing and of writing to the socket)."""
    return (head,) if tail is None else (head, str(seq).encode(), tail)


def render(event: ArticleEvent, fmt: str, *, seq: int, at: datetime, authority: str) -> bytes:
    """``event`` as the bytes partner format ``fmt`` receives; ``at`` is the enqueue time."""
    return Renderer(event, at=at, authority=authority)(fmt, seq=seq)


def ninjs_time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
