"""RSS 2.0 with Dublin Core, content:encoded and Media RSS.

The channel carries ``language`` (the language of most of its items; a feed's items may
differ, and each says its own in ``dc:language``). Per item, in this order: ``title`` (the
headline, as plain text: RSS readers take it as HTML, so anything that looks like a tag is
left out), ``link`` (canonical URL), ``description`` (a correction note first, then the
summary; before ``content:encoded``, where readers and validators look for it),
``content:encoded`` (the sanitised XHTML body; a right-to-left story's in ``<div dir="rtl">``),
one ``dc:creator`` per byline, ``dc:language``, ``category`` per category, ``guid
isPermaLink="false"``, ``pubDate`` (first publication, RFC 822), ``dcterms:modified`` (this
version, RFC 3339), ``enclosure`` for the lead image (RSS allows one; its length is unknown
here, so ``0`` as the RSS Advisory Board advises), and one ``media:content`` per image with its
caption (``media:description type="plain"``, tags left out) and ``media:credit``.

Versions: ``guid`` is the article's URN, the same for every version (as Atom's ``id`` and
NewsML-G2's ``guid``): a reader keeps one item per story and replaces it when the story
changes, rather than showing v1 and v2 side by side, and a kill reaches the very item readers
have. What tells a reader that v2 is new is ``dcterms:modified`` (feedparser's ``updated``),
the changed content and the channel's ``lastBuildDate``.

Kills and withdrawals: RSS has no tombstone, so the item stays with its guid, its title
prefixed ``Killed:`` or ``Withdrawn:``, the reason as description, and nothing else of the
story (no link, body or images), so that a reader that updates items in place stops showing
it. Embargoes are the caller's business: see :func:`newswire.formats.is_embargoed`.

Written as text (:mod:`newswire.formats.markup`), in the bytes lxml would make of the same tree.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from datetime import datetime, timezone
from typing import Sequence

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, Story, directed_body, prepare, render_each, utc_iso
from newswire.formats.markup import attribute, document, element, text, text_bytes
from newswire.sanitize import clean_text

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
MEDIA = "http://search.yahoo.com/mrss/"
NSMAP = {"atom": ATOM, "dc": DC, "dcterms": DCTERMS, "content": CONTENT, "media": MEDIA}
GENERATOR = "newswire"
#: what RSS readers would take for an HTML tag or comment in a plain-text title
_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)
_SPACES = re.compile(r" {2,}")
#: the namespace declarations of a standalone item (all but Atom's) and of the channel's root
_ITEM_NAMESPACES = "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in NSMAP.items() if prefix != "atom")
_RSS_NAMESPACES = "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in NSMAP.items())


def feed(events: Sequence[ArticleEvent], *, title: str, link: str, self_url: str, description: str,
         updated: datetime, authority: str = EXAMPLE_AUTHORITY, hub: str | None = None,
         language: str | None = None) -> bytes:
    """An RSS 2.0 channel with an item per event, in the order given: kills and withdrawals as
    their notice (module doc); one that cannot be rendered left out
    (:func:`newswire.formats.render_each`); ``hub``: its WebSub hub; ``language``: the
    channel's (by default that of most of its items)."""
    items = render_each(events, lambda story: (story.language, _item(story)), fmt="rss", authority=authority)
    if language is None and items:
        language = Counter(item_language for item_language, _ in items).most_common(1)[0][0]
    parts = [f'<rss{_RSS_NAMESPACES} version="2.0"><channel>', element("title", clean_text(title)),
             element("link", clean_text(link)), element("description", clean_text(description))]
    if language is not None:
        parts.append(element("language", clean_text(language)))
    parts += [element("lastBuildDate", rfc822(updated)), element("generator", GENERATOR),
              element("atom:link", href=clean_text(self_url), rel="self", type="application/rss+xml")]
    if hub:
        parts.append(element("atom:link", href=clean_text(hub), rel="hub"))
    return b"".join([document("".join(parts)), *(item for _, item in items), b"</channel></rss>"])


def item_bytes(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """One ``<item>`` as a standalone UTF-8 document declaring the namespaces it uses (a kill
    or withdrawal as its notice, as in :func:`feed`)."""
    return document(_item(prepare(event, authority=authority), _ITEM_NAMESPACES))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def fragment(event: ArticleEvent, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """The ``<item>`` of ``event`` as it stands in a :func:`feed` (ValueError when it cannot be rendered)."""
    return _item(prepare(event, authority=authority))


def rfc822(moment: datetime) -> str:
    """``Thu, 26 Nov 2026 08:00:00 GMT`` (as ``email.utils.format_datetime(usegmt=True)`` writes
    it, whatever the locale)."""
    t = moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT")


def plain(text: str) -> str:
    """``text`` without anything an RSS reader would take for markup (tags, comments)."""
    if "<" in text:  # each pattern needs its first character: most texts have neither
        text = _TAG.sub("", text)
    if "  " in text:
        text = _SPACES.sub(" ", text)
    return text.strip()


def _item(story: Story, namespaces: str = "") -> bytes:
    """The ``<item>`` of ``story`` in UTF-8 (the body escaped as bytes: :func:`markup.text_bytes`).
    Every text here is non-empty (:func:`~newswire.formats.prepare` gives None for a blank one),
    so each is written ``<tag>…</tag>`` as :func:`markup.element` would."""
    live = story.live
    headline = plain(story.headline) or story.headline
    if not live:
        headline = f"{'Killed' if story.event_type == 'killed' else 'Withdrawn'}: {headline}"
    head = f"<item{namespaces}><title>{text(headline)}</title>"
    if story.canonical_url and live:
        head += f"<link>{text(story.canonical_url)}</link>"
    description = " ".join(filter(None, (story.notice, story.summary if live else None)))
    if description:
        head += f"<description>{text(description)}</description>"
    body = b"<content:encoded>" + text_bytes(directed_body(story)) + b"</content:encoded>" if story.body else b""
    parts = [_simple("dc:creator", person.name) for person in story.people]
    parts.append(_simple("dc:language", story.language))
    parts += [_simple("category", category) for category in story.categories]
    parts.append(f'<guid isPermaLink="false">{text(story.uri)}</guid><pubDate>{rfc822(story.first_created)}</pubDate>'
                 f"<dcterms:modified>{utc_iso(story.occurred_at)}</dcterms:modified>")
    pictures = story.pictures if live else ()
    if pictures:
        parts.append(f'<enclosure url="{attribute(pictures[0].url)}" length="0" type="{attribute(pictures[0].media_type)}"/>')
    for picture in pictures:
        start = (f'<media:content url="{attribute(picture.url)}" type="{attribute(picture.media_type)}" medium="image"'
                 + (f' width="{picture.width}"' if picture.width else "")
                 + (f' height="{picture.height}"' if picture.height else ""))
        caption = picture.caption and plain(picture.caption)
        inner = (f'<media:description type="plain">{text(caption)}</media:description>' if caption else "") + (
            f"<media:credit>{text(picture.credit)}</media:credit>" if picture.credit else "")
        parts.append(f"{start}>{inner}</media:content>" if inner else f"{start}/>")
    parts.append("</item>")
    return b"".join((head.encode(), body, "".join(parts).encode()))  # the body copied once


@functools.lru_cache(maxsize=4096)
def _simple(tag: str, content: str) -> str:
    """``element(tag, content)`` of the texts many items share (bylines, languages, categories): kept."""
    return element(tag, content)
