"""RSS 2.0 with Dublin Core, content:encoded and Media RSS.

Per item: ``title`` (headline), ``link`` (canonical URL), ``description`` (a correction note
first, then the summary), ``content:encoded`` (the sanitised XHTML body), one ``dc:creator``
per byline, ``dc:language``, ``category`` per category, ``guid isPermaLink="false"`` (the
article's URN, the same for every version), ``pubDate`` (first publication, RFC 822) and one
``media:content`` per image with its caption (``media:description``) and ``media:credit``.

:func:`feed` leaves killed and withdrawn stories out (the caller passes the live items; the
check is defensive). Embargoes are the caller's business: see :func:`newswire.formats.is_embargoed`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Sequence

from lxml import etree

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, Story, element, prepare, render_each
from newswire.sanitize import clean_text

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
MEDIA = "http://search.yahoo.com/mrss/"
NSMAP = {"atom": ATOM, "dc": DC, "content": CONTENT, "media": MEDIA}
GENERATOR = "newswire"


def feed(events: Sequence[ArticleEvent], *, title: str, link: str, self_url: str, description: str,
         updated: datetime, authority: str = EXAMPLE_AUTHORITY, hub: str | None = None) -> bytes:
    """An RSS 2.0 channel with an item per live event, in the order given (one that cannot be
    rendered left out: :func:`newswire.formats.render_each`); ``hub``: its WebSub hub."""
    rss = etree.Element("rss", {"version": "2.0"}, nsmap=NSMAP)
    channel = _sub(rss, "channel")
    _sub(channel, "title", clean_text(title))
    _sub(channel, "link", clean_text(link))
    _sub(channel, "description", clean_text(description))
    _sub(channel, "lastBuildDate", rfc822(updated))
    _sub(channel, "generator", GENERATOR)
    _sub(channel, f"{{{ATOM}}}link", href=clean_text(self_url), rel="self", type="application/rss+xml")
    if hub:
        _sub(channel, f"{{{ATOM}}}link", href=clean_text(hub), rel="hub")
    rendered = render_each(events, lambda story: _item(story) if story.live else None, fmt="rss",
                           authority=authority)
    channel.extend(element for element in rendered if element is not None)
    return etree.tostring(rss, xml_declaration=True, encoding="UTF-8")


def item_bytes(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """One ``<item>`` as a standalone UTF-8 document declaring the namespaces it uses.

    Unlike :func:`feed`, this renders kills and withdrawals too (title and guid as before,
    the reason as description, no content), so that a partner taking RSS items hears of them.
    """
    return etree.tostring(_item(prepare(event, authority=authority)), xml_declaration=True, encoding="UTF-8")


def rfc822(moment: datetime) -> str:
    """``Thu, 26 Nov 2026 08:00:00 GMT``."""
    return format_datetime(moment.astimezone(timezone.utc).replace(microsecond=0), usegmt=True)


def _item(story: Story) -> etree._Element:
    item = etree.Element("item", nsmap={k: v for k, v in NSMAP.items() if k != "atom"})
    _sub(item, "title", story.headline)
    if story.canonical_url:
        _sub(item, "link", story.canonical_url)
    description = " ".join(filter(None, (story.notice, story.summary)))
    if description:
        _sub(item, "description", description)
    if story.body:
        _sub(item, f"{{{CONTENT}}}encoded", story.body)
    for person in story.people:
        _sub(item, f"{{{DC}}}creator", person.name)
    _sub(item, f"{{{DC}}}language", story.language)
    for category in story.categories:
        _sub(item, "category", category)
    _sub(item, "guid", story.uri, isPermaLink="false")
    _sub(item, "pubDate", rfc822(story.first_created))
    for picture in story.pictures:
        attributes = {"url": picture.url, "type": picture.media_type, "medium": "image"}
        attributes.update({k: str(v) for k, v in (("width", picture.width), ("height", picture.height)) if v})
        media = _sub(item, f"{{{MEDIA}}}content", **attributes)
        if picture.caption:
            _sub(media, f"{{{MEDIA}}}description", picture.caption, type="plain")
        if picture.credit:
            _sub(media, f"{{{MEDIA}}}credit", picture.credit)
    return item


_sub = element  # the RSS vocabulary has no default namespace
