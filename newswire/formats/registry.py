"""The format registry: every output format newswire speaks, in one table.

Each :class:`Format` names what every part needs of it: its name (and the other names
URLs accept), the media type of one item and of a feed or message, the file extension
of a delivered file, the renderer of one item (a standalone document), the renderer of a
feed or message (many items and a :class:`Channel`), and what a webhook delivery carries.
The feed server, the webhooks payloads and drop folders, the pusher and the archive CLI all
look formats up here; adding a format is adding one entry to :data:`FORMATS`.

Renderers stay pure (see :mod:`newswire.formats`): the functions here only bind each
format's own renderer to one calling convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Literal, Mapping, Sequence

from newswire.codec import ArticleEvent
from newswire.formats import atom, newsml, ninjs, rss, utc_iso


@dataclass(frozen=True)
class Channel:
    """What a feed or message says about itself; each format takes what it needs."""

    #: when it was last updated (NewsML-G2: the newsMessage's ``sent``)
    updated: datetime
    title: str = ""
    #: the human page it belongs to (RSS ``link``, Atom ``rel="alternate"``)
    link: str = ""
    self_url: str = ""
    #: Atom ``id``
    feed_id: str = ""
    description: str = ""
    #: NewsML-G2 ``header/transmitId``
    transmit_id: str | None = None
    #: ninjs: the members of the JSON object before ``items`` (e.g. ``feed``, ``updated``)
    head: Mapping[str, Any] = field(default_factory=dict)


ItemRenderer = Callable[[ArticleEvent, str], bytes]
FeedRenderer = Callable[[Sequence[ArticleEvent], Channel, str], bytes]


@dataclass(frozen=True)
class Format:
    name: str
    #: media type of one item (without parameters)
    media_type: str
    #: media type of a feed or message of items
    feed_media_type: str
    #: extension of a file holding one delivery (without the dot)
    extension: str
    #: ``(event, authority)`` → one item as a standalone document
    item: ItemRenderer
    #: ``(events, channel, authority)`` → a feed or message (ValueError when it can hold none)
    feed: FeedRenderer
    #: what a webhook delivery carries: the ``item``, a ``message`` of the one event (numbered by
    #: its transmit id), or a JSON ``envelope`` around the item (see consumers.webhooks.payloads)
    push: Literal["item", "message", "envelope"]
    #: a public syndication format: only live stories, never embargoed ones; its single item is a
    #: feed of one (RSS, Atom); the others (wire formats) carry kills, withdrawals and embargoes
    public: bool = False
    #: other names URLs accept for it
    aliases: tuple[str, ...] = ()
    #: the name in the feed server's URLs (``/feeds/all.<suffix>``); the name by default
    suffix: str = ""

    @property
    def url_name(self) -> str:
        return self.suffix or self.name

    @property
    def push_media_type(self) -> str:
        """The media type of what a webhook delivery carries."""
        return self.feed_media_type if self.push == "message" else self.media_type


def _newsml_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return newsml.news_message(events, sent=channel.updated, transmit_id=channel.transmit_id, authority=authority)


def _ninjs_item(event: ArticleEvent, authority: str) -> bytes:
    return ninjs.dumps(ninjs.item(event, authority=authority))


def _ninjs_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return ninjs.dumps({**channel.head, "items": ninjs.items(events, authority=authority)})


def _rss_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return rss.feed(events, title=channel.title, link=channel.link, self_url=channel.self_url,
                    description=channel.description, updated=channel.updated, authority=authority)


def _atom_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return atom.feed(events, title=channel.title, link=channel.link, self_url=channel.self_url,
                     feed_id=channel.feed_id, updated=channel.updated, authority=authority)


def _atom_item(event: ArticleEvent, authority: str) -> bytes:
    """An Atom entry has no standalone form here: a feed of one."""
    return _atom_feed([event], Channel(updated=event["occurred_at"], title=event["article_id"]), authority)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("newsml", "application/vnd.iptc.g2.newsitem+xml", "application/vnd.iptc.g2.newsmessage+xml", "xml",
           item=lambda event, authority: newsml.news_item_bytes(event, authority=authority), feed=_newsml_feed,
           push="message"),
    Format("ninjs", "application/json", "application/json", "json", item=_ninjs_item, feed=_ninjs_feed,
           push="envelope", aliases=("json",), suffix="json"),
    Format("rss", "application/rss+xml", "application/rss+xml", "rss.xml",
           item=lambda event, authority: rss.item_bytes(event, authority=authority), feed=_rss_feed,
           push="item", public=True),
    Format("atom", "application/atom+xml", "application/atom+xml", "atom.xml", item=_atom_item, feed=_atom_feed,
           push="item", public=True),
)}
#: every name a URL may use for a format → its format
BY_NAME: dict[str, Format] = {name: f for f in FORMATS.values() for name in (f.name, *f.aliases)}


def get(name: str) -> Format:
    """The format called ``name`` (or one of its aliases); ValueError naming the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"format: {name!r} is not one of {', '.join(sorted(BY_NAME))}") from None


def _push_extensions() -> dict[str, str]:
    extensions: dict[str, str] = {}
    for fmt in FORMATS.values():
        if extensions.setdefault(fmt.push_media_type, fmt.extension) != fmt.extension:
            raise RuntimeError(f"formats delivering {fmt.push_media_type} must share one file extension")
    return extensions


#: media type of a webhook delivery → extension of its file (a stored delivery keeps only its
#: content type, and the partner's format may have changed since it was queued)
PUSH_EXTENSIONS = _push_extensions()


def push_extension(media_type: str) -> str:
    """The file extension of a delivery whose content type is ``media_type``."""
    try:
        return PUSH_EXTENSIONS[media_type.split(";")[0].strip().lower()]
    except KeyError:
        raise ValueError(f"content_type: {media_type!r} is not what any format delivers") from None


def ninjs_head(**members: Any) -> dict[str, Any]:
    """``members`` for :attr:`Channel.head`, datetimes as ninjs writes them."""
    return {k: utc_iso(v) if isinstance(v, datetime) else v for k, v in members.items()}
