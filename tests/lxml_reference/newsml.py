"""newswire.formats.newsml as it was with lxml trees (see tests.lxml_reference)."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from lxml import etree

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, XHTML, Picture, Story, prepare, render_each, utc_iso
from newswire.formats.newsml import IPTC_CATALOG, NAR, OWN_SCHEMES, STANDARD_VERSION, SUBHEADLINE_ROLE, _role
from tests.lxml_reference import direction, element, xhtml

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_NSMAP = {None: NAR}
_N = "{%s}" % NAR


def news_item(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> etree._Element:
    """The text newsItem of ``event``, its ids minted by ``authority`` (see module doc)."""
    return _text_item(prepare(event, authority=authority))


def news_item_bytes(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """:func:`news_item` as a standalone UTF-8 document with an XML declaration."""
    return _document(news_item(event, authority=authority))


def picture_items(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> list[etree._Element]:
    """One ninat:picture newsItem per image of ``event``, at the article's version."""
    story = prepare(event, authority=authority)
    return [_picture_item(story, picture) for picture in story.pictures]


def news_message(events: Sequence[ArticleEvent], *, sent: datetime, transmit_id: str | None = None,
                 include_pictures: bool = True, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """A newsMessage carrying the text item of each event (and its picture items).

    An event that cannot be rendered is left out (see :func:`newswire.formats.render_each`);
    ``ValueError`` when none can (the first one's error), since a newsMessage holds at least one item.
    """
    message = message_envelope(sent=sent, transmit_id=transmit_id, authority=authority)
    item_set = message[-1]
    for items in render_each(events, lambda story: _items(story, include_pictures), fmt="newsml",
                             authority=authority):
        item_set.extend(items)
    if not len(item_set):  # a newsMessage holds at least one item
        if events:  # the first event again, for its own error naming the field
            _items(prepare(events[0], authority=authority), include_pictures)
        raise ValueError(f"itemSet: none of the {len(events)} items could be rendered")
    return _document(message)


def message_envelope(*, sent: datetime, transmit_id: str | None = None,
                     authority: str = EXAMPLE_AUTHORITY) -> etree._Element:
    """A newsMessage with its header and an empty ``itemSet`` (its last child) for the items."""
    message = etree.Element(_N + "newsMessage", nsmap=_NSMAP)
    header = _sub(message, "header")
    _sub(header, "sent", utc_iso(sent))
    _sub(header, "sender", authority)
    if transmit_id:
        _sub(header, "transmitId", transmit_id)
    _sub(message, "itemSet")
    return message


def _items(story: Story, include_pictures: bool) -> list[etree._Element]:
    """The text item of ``story``, then its picture items when ``include_pictures``."""
    pictures = story.pictures if include_pictures else ()
    return [_text_item(story), *(_picture_item(story, picture) for picture in pictures)]


def _text_item(story: Story) -> etree._Element:
    item = _item_root(story, story.uri)
    meta = _item_meta(item, story, "ninat:text")
    for picture in story.pictures:
        _sub(meta, "link", rel="irel:seeAlso", residref=picture.uri, version=str(story.version),
             contenttype=picture.media_type)
    content = _sub(item, "contentMeta")
    _sub(content, "urgency", str(story.urgency))
    _sub(content, "contentCreated", utc_iso(story.first_created))
    _sub(content, "contentModified", utc_iso(story.occurred_at))
    if story.dateline_place:
        located = _sub(content, "located")
        _sub(located, "name", story.dateline_place)
    for person in story.people:
        creator = _sub(content, "creator", role=_role(person.role))
        _sub(creator, "name", person.name)
    _descriptive(content, story)
    if story.dateline:
        _sub(content, "dateline", story.dateline)
    if story.byline:
        _sub(content, "by", story.byline)
    if story.summary:
        _sub(content, "description", story.summary, role="drol:summary")
    content_set = _sub(item, "contentSet")
    inline = _sub(content_set, "inlineXML", contenttype="application/xhtml+xml")
    inline.append(xhtml_document(story))
    return item


def xhtml_document(story: Story) -> etree._Element:
    """``<html xmlns="http://www.w3.org/1999/xhtml">`` with the headline as title and the body."""
    html = etree.Element(f"{{{XHTML}}}html", {XML_LANG: story.language, "lang": story.language,
                                              **direction(story)}, nsmap={None: XHTML})
    head = element(html, f"{{{XHTML}}}head")
    element(head, f"{{{XHTML}}}title", story.headline)
    html.append(xhtml(story.body, "body"))
    return html


def _item_root(story: Story, guid: str) -> etree._Element:
    item = etree.Element(_N + "newsItem", nsmap=_NSMAP)
    item.set("guid", guid)
    item.set("version", str(story.version))
    item.set("standard", "NewsML-G2")
    item.set("standardversion", STANDARD_VERSION)
    item.set("conformance", "power")
    item.set(XML_LANG, story.language)
    _sub(item, "catalogRef", href=IPTC_CATALOG)
    catalog = _sub(item, "catalog")
    for alias, (path, title) in OWN_SCHEMES.items():
        scheme = _sub(catalog, "scheme", alias=alias, uri=story.vocabularies + path)
        _sub(scheme, "name", title)
    rights = _sub(item, "rightsInfo")
    holder = _sub(rights, "copyrightHolder", literal=story.provider)
    _sub(holder, "name", story.provider)
    if story.copyright_notice:
        _sub(rights, "copyrightNotice", story.copyright_notice)
    if story.usage_terms:
        _sub(rights, "usageTerms", story.usage_terms)
    return item


def _item_meta(item: etree._Element, story: Story, item_class: str) -> etree._Element:
    """itemMeta; a picture shares its story's status, embargo, kill note and content warning,
    but not the signal and note of an update or correction (which are about the text)."""
    text = item_class == "ninat:text"
    meta = _sub(item, "itemMeta")
    _sub(meta, "itemClass", qcode=item_class)
    provider = _sub(meta, "provider", literal=story.provider)
    _sub(provider, "name", story.provider)
    _sub(meta, "versionCreated", utc_iso(story.occurred_at))
    _sub(meta, "firstCreated", utc_iso(story.first_created))
    if story.embargo_until is not None:
        _sub(meta, "embargoed", utc_iso(story.embargo_until))
    _sub(meta, "pubStatus", qcode=f"stat:{story.pub_status}")
    notes = story.ed_notes if text or not story.live else filter(None, [story.warning])
    for note in notes:
        _sub(meta, "edNote", note)
    signals = {"corrected": "sig:correction", "updated": "sig:update"}
    if text and story.event_type in signals:
        _sub(meta, "signal", qcode=signals[story.event_type])
    if story.content_warning:
        _sub(meta, "signal", qcode="sig:cwarn")
    return meta


def _descriptive(content: etree._Element, story: Story) -> None:
    """language, keywords, subjects (Media Topics, each followed by its IPTC Subject Code, then
    places), slugline and headlines."""
    _sub(content, "language", tag=story.language)
    for keyword in story.keywords:
        _sub(content, "keyword", keyword)
    for subject in story.subjects:
        element = _sub(content, "subject", type="cpnat:abstract", qcode=subject.code)
        if subject.name:
            _sub(element, "name", subject.name)
    for place in story.places:
        element = _sub(content, "subject", type="cpnat:geoArea")
        _sub(element, "name", place)
    if story.slugline:
        _sub(content, "slugline", story.slugline)
    _sub(content, "headline", story.headline)
    if story.subheadline:
        _sub(content, "headline", story.subheadline, role=SUBHEADLINE_ROLE)


def _picture_item(story: Story, picture: Picture) -> etree._Element:
    item = _item_root(story, picture.uri)
    meta = _item_meta(item, story, "ninat:picture")
    _sub(meta, "link", rel="irel:seeAlso", residref=story.uri, version=str(story.version),
         contenttype="application/xhtml+xml")
    content = _sub(item, "contentMeta")
    _sub(content, "contentCreated", utc_iso(story.first_created))
    _sub(content, "contentModified", utc_iso(story.occurred_at))
    _sub(content, "language", tag=story.language)
    _sub(content, "headline", story.headline)
    if picture.credit:
        _sub(content, "creditline", picture.credit)
    if picture.caption:
        _sub(content, "description", picture.caption, role="drol:caption")
    content_set = _sub(item, "contentSet")
    dimensions = {name: str(value) for name, value in (("width", picture.width), ("height", picture.height))
                  if value is not None}
    _sub(content_set, "remoteContent", href=picture.url, contenttype=picture.media_type,
         rendition="rnd:highRes", **dimensions)
    return item


def _sub(parent: etree._Element, local: str, text: str | None = None, /, **attributes: str) -> etree._Element:
    return element(parent, _N + local, text, **attributes)


def _document(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
