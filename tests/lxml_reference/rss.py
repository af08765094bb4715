"""newswire.formats.rss as it was with lxml trees (see tests.lxml_reference)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Sequence

from lxml import etree

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, Story, directed_body, prepare, render_each, utc_iso
from newswire.formats.rss import ATOM, CONTENT, DC, DCTERMS, GENERATOR, MEDIA, NSMAP, plain, rfc822
from newswire.sanitize import clean_text
from tests.lxml_reference import element


def feed(events: Sequence[ArticleEvent], *, title: str, link: str, self_url: str, description: str, updated: datetime,
         authority: str = EXAMPLE_AUTHORITY, hub: str | None = None, language: str | None = None) -> bytes:
    """newswire.formats.rss.feed, as an lxml tree."""
    rss = etree.Element("rss", {"version": "2.0"}, nsmap=NSMAP)
    channel = _sub(rss, "channel")
    _sub(channel, "title", clean_text(title))
    _sub(channel, "link", clean_text(link))
    _sub(channel, "description", clean_text(description))
    items = render_each(events, lambda story: (story.language, _item(story)), fmt="rss", authority=authority)
    if language is None and items:
        language = Counter(item_language for item_language, _ in items).most_common(1)[0][0]
    if language is not None:
        _sub(channel, "language", clean_text(language))
    _sub(channel, "lastBuildDate", rfc822(updated))
    _sub(channel, "generator", GENERATOR)
    _sub(channel, f"{{{ATOM}}}link", href=clean_text(self_url), rel="self", type="application/rss+xml")
    if hub:
        _sub(channel, f"{{{ATOM}}}link", href=clean_text(hub), rel="hub")
    channel.extend(item for _, item in items)
    return etree.tostring(rss, xml_declaration=True, encoding="UTF-8")


def item_bytes(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """One ``<item>`` as a standalone UTF-8 document declaring the namespaces it uses (a kill
    or withdrawal as its notice, as in :func:`feed`)."""
    return etree.tostring(_item(prepare(event, authority=authority)), xml_declaration=True, encoding="UTF-8")


def _item(story: Story) -> etree._Element:
    item = etree.Element("item", nsmap={k: v for k, v in NSMAP.items() if k != "atom"})
    headline = plain(story.headline) or story.headline
    if not story.live:
        headline = f"{'Killed' if story.event_type == 'killed' else 'Withdrawn'}: {headline}"
    _sub(item, "title", headline)
    if story.canonical_url and story.live:
        _sub(item, "link", story.canonical_url)
    description = " ".join(filter(None, (story.notice, story.summary if story.live else None)))
    if description:
        _sub(item, "description", description)
    if story.body:
        _sub(item, f"{{{CONTENT}}}encoded", directed_body(story))
    for person in story.people:
        _sub(item, f"{{{DC}}}creator", person.name)
    _sub(item, f"{{{DC}}}language", story.language)
    for category in story.categories:
        _sub(item, "category", category)
    _sub(item, "guid", story.uri, isPermaLink="false")
    _sub(item, "pubDate", rfc822(story.first_created))
    _sub(item, f"{{{DCTERMS}}}modified", utc_iso(story.occurred_at))
    pictures = story.pictures if story.live else ()
    if pictures:
        _sub(item, "enclosure", url=pictures[0].url, length="0", type=pictures[0].media_type)
    for picture in pictures:
        attributes = {"url": picture.url, "type": picture.media_type, "medium": "image"}
        attributes.update({k: str(v) for k, v in (("width", picture.width), ("height", picture.height)) if v})
        media = _sub(item, f"{{{MEDIA}}}content", **attributes)
        caption = picture.caption and plain(picture.caption)
        if caption:
            _sub(media, f"{{{MEDIA}}}description", caption, type="plain")
        if picture.credit:
            _sub(media, f"{{{MEDIA}}}credit", picture.credit)
    return item


_sub = element  # the RSS vocabulary has no default namespace
