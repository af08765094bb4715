"""newswire.formats.atom as it was with lxml trees (see tests.lxml_reference)."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from lxml import etree

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, Story, render_each, utc_iso
from newswire.formats.atom import ATOM, GENERATOR, TOMBSTONES
from newswire.sanitize import clean_text
from tests.lxml_reference import direction, element, xhtml

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_A = "{%s}" % ATOM
_T = "{%s}" % TOMBSTONES


def feed(events: Sequence[ArticleEvent], *, title: str, link: str, self_url: str, feed_id: str,
         updated: datetime, authority: str = EXAMPLE_AUTHORITY, hub: str | None = None) -> bytes:
    """An Atom feed with an entry per live event and a tombstone per kill or withdrawal, in
    the order given (one that cannot be rendered left out: :func:`newswire.formats.render_each`);
    ``hub``: its WebSub hub."""
    root = etree.Element(_A + "feed", nsmap={None: ATOM, "at": TOMBSTONES})
    _sub(root, "id", clean_text(feed_id))
    _sub(root, "title", clean_text(title))
    _sub(root, "updated", utc_iso(updated))
    _sub(root, "link", rel="self", type="application/atom+xml", href=clean_text(self_url))
    _sub(root, "link", rel="alternate", type="text/html", href=clean_text(link))
    if hub:
        _sub(root, "link", rel="hub", href=clean_text(hub))
    _sub(root, "generator", GENERATOR)
    root.extend(render_each(events, lambda story: _entry(story) if story.live else _tombstone(story), fmt="atom",
                            authority=authority))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _entry(story: Story) -> etree._Element:
    entry = etree.Element(_A + "entry")
    entry.set(XML_LANG, story.language)
    _sub(entry, "id", story.uri)
    _sub(entry, "title", story.headline)
    _sub(entry, "updated", utc_iso(story.occurred_at))
    _sub(entry, "published", utc_iso(story.first_created))
    for name in [p.name for p in story.people] or [story.provider]:
        author = _sub(entry, "author")
        _sub(author, "name", name)
    if story.canonical_url:
        _sub(entry, "link", rel="alternate", type="text/html", href=story.canonical_url)
    for picture in story.pictures:
        _sub(entry, "link", rel="enclosure", type=picture.media_type, href=picture.url,
             **({"title": picture.caption} if picture.caption else {}))
    for category in story.categories:
        _sub(entry, "category", term=category)
    for subject in story.subjects:
        _sub(entry, "category", term=subject.code, **({"scheme": subject.scheme} if subject.scheme else {}),
             **({"label": subject.name} if subject.name else {}))
    summary = " ".join(filter(None, (story.notice, story.summary)))
    if summary:
        _sub(entry, "summary", summary)
    if story.body:
        content = _sub(entry, "content", type="xhtml")
        content.append(xhtml(story.body, "div", **direction(story)))
    if story.copyright_notice:
        _sub(entry, "rights", story.copyright_notice)
    return entry


def _tombstone(story: Story) -> etree._Element:
    deleted = etree.Element(_T + "deleted-entry", ref=story.uri, when=utc_iso(story.occurred_at))
    by = element(deleted, _T + "by")
    _sub(by, "name", story.provider)
    element(deleted, _T + "comment", story.notice)
    return deleted


def _sub(parent: etree._Element, local: str, text: str | None = None, /, **attributes: str) -> etree._Element:
    return element(parent, _A + local, text, **attributes)
