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

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable, Literal, Mapping, Sequence

from newswire.codec import ArticleEvent
from newswire.formats import atom, newsml, ninjs, ninjs2, prepare, rss, utc_iso


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
    #: its WebSub hub (RSS and Atom advertise it)
    hub: str | None = None
    #: RSS channel ``language``; by default that of most of its items
    language: str | None = None
    #: ninjs: the members of the JSON object before ``items`` (e.g. ``feed``, ``updated``)
    head: Mapping[str, Any] = field(default_factory=dict)


ItemRenderer = Callable[[ArticleEvent, str], bytes]
FeedRenderer = Callable[[Sequence[ArticleEvent], Channel, str], bytes]
#: ``(channel, authority)`` → the bytes of a feed or message before its items and after them
Envelope = Callable[[Channel, str], tuple[bytes, bytes]]


@dataclass(frozen=True)
class Assembly:
    """How a feed or message of a format is assembled from the items' kept bytes (see
    :mod:`newswire.formats.kept`): ``head + separator.join(fragments) + tail``, byte for byte
    what :attr:`Format.feed` renders."""

    #: ``(event, authority)`` → the item as it stands inside a feed or message (b"" when the
    #: format leaves the event out, e.g. a kill in RSS); ValueError when it cannot be rendered
    fragment: ItemRenderer
    envelope: Envelope
    separator: bytes = b""
    #: a feed or message of no item is not valid (a newsMessage holds at least one)
    needs_items: bool = False
    #: ``(channel, fragments)`` → the channel with what it takes from its items (RSS: the language)
    complete: Callable[[Channel, Sequence[bytes]], Channel] | None = None


def xml_assembly(feed: FeedRenderer, close: bytes, fragment: ItemRenderer,
                 complete: Callable[[Channel, Sequence[bytes]], Channel] | None = None) -> Assembly:
    """The assembly of an XML format whose items (``fragment``: the bytes a feed of the event
    has more than a feed of none) are the last children of the element that ``close`` ends
    (``</channel>``, ``</feed>``): a feed of no item is the envelope."""

    def envelope(channel: Channel, authority: str) -> tuple[bytes, bytes]:
        empty = feed([], channel, authority)
        cut = empty.rindex(close)
        return empty[:cut], empty[cut:]

    return Assembly(fragment, envelope, complete=complete)


def json_assembly(item: ItemRenderer) -> Assembly:
    """The assembly of a JSON format: ``{<channel head>, "items": [<item>, ...]}``."""

    def envelope(channel: Channel, authority: str) -> tuple[bytes, bytes]:
        return ninjs.dumps({**channel.head, "items": []})[:-2], b"]}"

    return Assembly(item, envelope, b",")


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
    #: the same feed assembled from kept item bytes
    assembly: Assembly
    #: what a webhook delivery carries: the ``item``, a ``message`` of the one event (numbered by
    #: its transmit id), or a JSON ``envelope`` around the item (see consumers.webhooks.payloads)
    push: Literal["item", "message", "envelope"]
    #: a public syndication format: never embargoed stories, kills and withdrawals as what it can
    #: say (RSS: a notice; Atom: a tombstone); its single item is a feed of one (RSS, Atom); the
    #: others (wire formats) carry kills, withdrawals and embargoes for whoever may see them
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


def _newsml_envelope(channel: Channel, authority: str) -> tuple[bytes, bytes]:
    return newsml.message_envelope(sent=channel.updated, transmit_id=channel.transmit_id, authority=authority)


def _newsml_fragment(event: ArticleEvent, authority: str) -> bytes:
    """The text item and picture items of ``event`` inside a newsMessage's itemSet."""
    return newsml.items_markup(prepare(event, authority=authority)).encode()


def _ninjs_item(event: ArticleEvent, authority: str) -> bytes:
    return ninjs.dumps(ninjs.item(event, authority=authority))


def _ninjs_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return ninjs.dumps({**channel.head, "items": ninjs.items(events, authority=authority)})


def _ninjs2_item(event: ArticleEvent, authority: str) -> bytes:
    return ninjs.dumps(ninjs2.item(event, authority=authority))


def _ninjs2_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return ninjs.dumps({**channel.head, "items": ninjs2.items(events, authority=authority)})


def _rss_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return rss.feed(events, title=channel.title, link=channel.link, self_url=channel.self_url,
                    description=channel.description, updated=channel.updated, authority=authority,
                    hub=channel.hub, language=channel.language)


_RSS_LANGUAGE = re.compile(rb"<dc:language>([^<]*)</dc:language>")


def _rss_language(channel: Channel, fragments: Sequence[bytes]) -> Channel:
    """The channel's language when not given: that of most items, as :func:`rss.feed` picks it."""
    if channel.language is not None:
        return channel
    found = [m.group(1).decode() for part in fragments if (m := _RSS_LANGUAGE.search(part))]
    return replace(channel, language=Counter(found).most_common(1)[0][0]) if found else channel


def _atom_feed(events: Sequence[ArticleEvent], channel: Channel, authority: str) -> bytes:
    return atom.feed(events, title=channel.title, link=channel.link, self_url=channel.self_url,
                     feed_id=channel.feed_id, updated=channel.updated, authority=authority, hub=channel.hub)


def _atom_item(event: ArticleEvent, authority: str) -> bytes:
    """An Atom entry has no standalone form here: a feed of one."""
    return _atom_feed([event], Channel(updated=event["occurred_at"], title=event["article_id"]), authority)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("newsml", "application/vnd.iptc.g2.newsitem+xml", "application/vnd.iptc.g2.newsmessage+xml", "xml",
           item=lambda event, authority: newsml.news_item_bytes(event, authority=authority), feed=_newsml_feed,
           assembly=Assembly(_newsml_fragment, _newsml_envelope, needs_items=True), push="message"),
    Format("ninjs", "application/json", "application/json", "json", item=_ninjs_item, feed=_ninjs_feed,
           assembly=json_assembly(_ninjs_item), push="envelope", aliases=("json",), suffix="json"),
    # ninjs 2.2, for software that reads ninjs 2.x (the same object in 2.2's spelling)
    Format("ninjs2", "application/json", "application/json", "json", item=_ninjs2_item, feed=_ninjs2_feed,
           assembly=json_assembly(_ninjs2_item), push="envelope"),
    Format("rss", "application/rss+xml", "application/rss+xml", "rss.xml",
           item=lambda event, authority: rss.item_bytes(event, authority=authority), feed=_rss_feed,
           assembly=xml_assembly(_rss_feed, b"</channel>", rss.fragment, _rss_language), push="item", public=True),
    Format("atom", "application/atom+xml", "application/atom+xml", "atom.xml", item=_atom_item, feed=_atom_feed,
           assembly=xml_assembly(_atom_feed, b"</feed>", atom.fragment), push="item", public=True),
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
