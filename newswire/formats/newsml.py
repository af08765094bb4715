"""NewsML-G2 2.35 (Power conformance): a text newsItem per article version, a picture
newsItem per image, and newsMessage envelopes for feeds and batches.

What an item says (element order is the schema's):

* ``guid`` is the article's URN (see :mod:`newswire.formats`), ``version`` the article
  version, so every version of an article is the same item at a higher version;
* ``pubStatus`` is ``stat:usable``, ``stat:canceled`` (kill) or ``stat:withheld``
  (withdrawal); a correction carries ``signal sig:correction`` and its note as ``edNote``,
  an update ``sig:update``; a kill or withdrawal its reason as ``edNote``; a content
  warning ``sig:cwarn`` and an ``edNote``; an embargo ``embargoed``;
* the subheadline is a second ``headline`` with ``role="nwhrol:subheadline"`` and bylines are
  ``creator`` with ``role="nwcrol:<role>"``: both schemes are newswire's own and are declared
  by an inline ``catalog`` in every item, next to the ``catalogRef`` to IPTC's catalog;
* each Media Topic ``subject`` is followed by the IPTC Subject Code IPTC maps it to
  (``subj:``), the vocabulary wire-ingest systems such as Superdesk read;
* the body is an XHTML document in ``inlineXML`` (``application/xhtml+xml``), ``dir="rtl"``
  for right-to-left languages; each picture item is linked with ``rel="irel:seeAlso"``.

Items are written as text (:mod:`newswire.formats.markup`), in the bytes lxml would make of
the same tree: a newsItem inside a newsMessage without its own namespace declaration.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Sequence

from lxml import etree

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, XHTML, Picture, Story, prepare, render_each, utc_iso
from newswire.formats.markup import attribute, document, element, text

NAR = "http://iptc.org/std/nar/2006-10-01/"
IPTC_CATALOG = "http://www.iptc.org/std/catalog/catalog.IPTC-G2-Standards_41.xml"
STANDARD_VERSION = "2.35"
#: newswire's own schemes: alias -> (URI under Story.vocabularies, title)
OWN_SCHEMES = {
    "nwhrol": ("headline-role/", "Headline roles (main, subheadline)"),
    "nwcrol": ("creator-role/", "Creator roles (reporter, photographer, ...)"),
}
SUBHEADLINE_ROLE = "nwhrol:subheadline"

_ROLE_CODE = re.compile(r"[^\w.-]+")
_SIGNALS = {"corrected": "sig:correction", "updated": "sig:update"}


def news_item_bytes(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """The text newsItem of ``event``, its ids minted by ``authority`` (see module doc), as a
    standalone UTF-8 document with an XML declaration."""
    return document(_text_item(prepare(event, authority=authority), f' xmlns="{NAR}"'))


def picture_item_bytes(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> list[bytes]:
    """One ninat:picture newsItem per image of ``event``, at the article's version, each a
    standalone document."""
    story = prepare(event, authority=authority)
    return [document(_picture_item(story, picture, f' xmlns="{NAR}"')) for picture in story.pictures]


def picture_items(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> list[etree._Element]:
    """:func:`picture_item_bytes` parsed (for readers that look into them)."""
    return [etree.fromstring(item) for item in picture_item_bytes(event, authority=authority)]


def news_message(events: Sequence[ArticleEvent], *, sent: datetime, transmit_id: str | None = None,
                 include_pictures: bool = True, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """A newsMessage carrying the text item of each event (and its picture items).

    An event that cannot be rendered is left out (see :func:`newswire.formats.render_each`);
    ``ValueError`` when none can (the first one's error), since a newsMessage holds at least one item.
    """
    items = render_each(events, lambda story: items_markup(story, include_pictures).encode(), fmt="newsml",
                        authority=authority)
    if not items:  # a newsMessage holds at least one item
        if events:  # the first event again, for its own error naming the field
            items_markup(prepare(events[0], authority=authority), include_pictures)
        raise ValueError(f"itemSet: none of the {len(events)} items could be rendered")
    head, tail = message_envelope(sent=sent, transmit_id=transmit_id, authority=authority)
    return b"".join([head, *items, tail])


def message_envelope(*, sent: datetime, transmit_id: str | None = None,
                     authority: str = EXAMPLE_AUTHORITY) -> tuple[bytes, bytes]:
    """The bytes of a newsMessage with its header before its items, and after them."""
    transmit = element("transmitId", transmit_id) if transmit_id else ""
    head = (f'<newsMessage xmlns="{NAR}"><header>{element("sent", utc_iso(sent))}{element("sender", authority)}'
            f'{transmit}</header><itemSet>')
    return document(head), b"</itemSet></newsMessage>"


def items_markup(story: Story, include_pictures: bool = True) -> str:
    """The text item of ``story``, then its picture items when ``include_pictures``, as they
    stand in a newsMessage."""
    pictures = story.pictures if include_pictures else ()
    return "".join([_text_item(story), *(_picture_item(story, picture) for picture in pictures)])


def _text_item(story: Story, xmlns: str = "") -> str:
    """The text newsItem. Every text of a story is None or non-empty (:func:`~newswire.formats.prepare`),
    so each is written ``<tag>…</tag>`` as :func:`markup.element` would."""
    version = story.version
    links = "".join(f'<link rel="irel:seeAlso" residref="{attribute(picture.uri)}" version="{version}" '
                    f'contenttype="{attribute(picture.media_type)}"/>' for picture in story.pictures)
    parts = [_item_root(story, story.uri, xmlns), _item_meta(story, "ninat:text", links),
             f"<contentMeta><urgency>{story.urgency}</urgency><contentCreated>{utc_iso(story.first_created)}"
             f"</contentCreated><contentModified>{utc_iso(story.occurred_at)}</contentModified>"]
    if story.dateline_place:
        parts.append(f"<located><name>{text(story.dateline_place)}</name></located>")
    parts += [_creator(person.name, person.role) for person in story.people]
    parts.append(_descriptive(story))
    if story.dateline:
        parts.append(f"<dateline>{text(story.dateline)}</dateline>")
    if story.byline:
        parts.append(f"<by>{text(story.byline)}</by>")
    if story.summary:
        parts.append(f'<description role="drol:summary">{text(story.summary)}</description>')
    parts.append('</contentMeta><contentSet><inlineXML contenttype="application/xhtml+xml">')
    parts.append(xhtml_document(story))
    parts.append("</inlineXML></contentSet></newsItem>")
    return "".join(parts)


def xhtml_document(story: Story) -> str:
    """``<html xmlns="http://www.w3.org/1999/xhtml">`` with the headline as title and the body."""
    language = attribute(story.language)
    direction = ' dir="rtl"' if story.rtl else ""
    body = f"<body>{story.body}</body>" if story.body else "<body/>"
    return (f'<html xmlns="{XHTML}" xml:lang="{language}" lang="{language}"{direction}>'
            f'<head><title>{text(story.headline)}</title></head>{body}</html>')


def _item_root(story: Story, guid: str, xmlns: str) -> str:
    """The newsItem's start tag, catalogs and rightsInfo."""
    rights = [_copyright_holder(story.provider)]
    if story.copyright_notice:
        rights.append(f"<copyrightNotice>{text(story.copyright_notice)}</copyrightNotice>")
    if story.usage_terms:
        rights.append(f"<usageTerms>{text(story.usage_terms)}</usageTerms>")
    return (f'<newsItem{xmlns} guid="{attribute(guid)}" version="{story.version}" standard="NewsML-G2" '
            f'standardversion="{STANDARD_VERSION}" conformance="power" xml:lang="{attribute(story.language)}">'
            f'{_catalogs(story.vocabularies)}{"".join(rights)}</rightsInfo>')


@functools.lru_cache(maxsize=64)
def _catalogs(vocabularies: str) -> str:
    """IPTC's catalogRef and the inline catalog of newswire's own schemes under ``vocabularies``."""
    schemes = "".join(f'<scheme alias="{alias}" uri="{attribute(vocabularies + path)}">'
                      f"{element('name', title)}</scheme>" for alias, (path, title) in OWN_SCHEMES.items())
    return f'<catalogRef href="{IPTC_CATALOG}"/><catalog>{schemes}</catalog>'


@functools.lru_cache(maxsize=256)
def _copyright_holder(provider: str) -> str:
    """``<rightsInfo>`` up to the copyright holder (the provider: the same few recur, so kept)."""
    return f'<rightsInfo><copyrightHolder literal="{attribute(provider)}">{element("name", provider)}</copyrightHolder>'


@functools.lru_cache(maxsize=256)
def _provider(provider: str) -> str:
    """The ``provider`` of itemMeta (the same few recur, so kept)."""
    return f'<provider literal="{attribute(provider)}">{element("name", provider)}</provider>'


def _item_meta(story: Story, item_class: str, links: str) -> str:
    """itemMeta; a picture shares its story's status, embargo, kill note and content warning,
    but not the signal and note of an update or correction (which are about the text)."""
    is_text = item_class == "ninat:text"
    parts = [f'<itemMeta><itemClass qcode="{item_class}"/>{_provider(story.provider)}'
             f"<versionCreated>{utc_iso(story.occurred_at)}</versionCreated>"
             f"<firstCreated>{utc_iso(story.first_created)}</firstCreated>"]
    if story.embargo_until is not None:
        parts.append(f"<embargoed>{utc_iso(story.embargo_until)}</embargoed>")
    parts.append(f'<pubStatus qcode="stat:{story.pub_status}"/>')
    notes = story.ed_notes if is_text or not story.live else filter(None, [story.warning])
    parts += [f"<edNote>{text(note)}</edNote>" for note in notes]
    if is_text and story.event_type in _SIGNALS:
        parts.append(f'<signal qcode="{_SIGNALS[story.event_type]}"/>')
    if story.content_warning:
        parts.append('<signal qcode="sig:cwarn"/>')
    parts.append(links)
    parts.append("</itemMeta>")
    return "".join(parts)


def _descriptive(story: Story) -> str:
    """language, keywords, subjects (Media Topics, each followed by its IPTC Subject Code, then
    places), slugline and headlines."""
    parts = [f'<language tag="{attribute(story.language)}"/>']
    parts += [f"<keyword>{text(keyword)}</keyword>" for keyword in story.keywords]
    parts += [_subject(subject.code, subject.name) for subject in story.subjects]
    parts += [_place(place) for place in story.places]
    if story.slugline:
        parts.append(f"<slugline>{text(story.slugline)}</slugline>")
    parts.append(f"<headline>{text(story.headline)}</headline>")
    if story.subheadline:
        parts.append(f'<headline role="{SUBHEADLINE_ROLE}">{text(story.subheadline)}</headline>')
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def _subject(code: str, name: str | None) -> str:
    """A ``subject`` of a concept (most are from a vocabulary, so their markup is kept)."""
    start = f'<subject type="cpnat:abstract" qcode="{attribute(code)}"'
    return f"{start}>{element('name', name)}</subject>" if name else f"{start}/>"


@functools.lru_cache(maxsize=4096)
def _place(place: str) -> str:
    """The ``subject`` of a place (the same places recur, so kept)."""
    return f'<subject type="cpnat:geoArea">{element("name", place)}</subject>'


@functools.lru_cache(maxsize=4096)
def _creator(name: str, role: str | None) -> str:
    """The ``creator`` of a byline (the same bylines recur, so kept)."""
    return f'<creator role="{attribute(_role(role))}">{element("name", name)}</creator>'


def _picture_item(story: Story, picture: Picture, xmlns: str = "") -> str:
    link = (f'<link rel="irel:seeAlso" residref="{attribute(story.uri)}" version="{story.version}" '
            'contenttype="application/xhtml+xml"/>')
    parts = [_item_root(story, picture.uri, xmlns), _item_meta(story, "ninat:picture", link),
             f"<contentMeta><contentCreated>{utc_iso(story.first_created)}</contentCreated>"
             f"<contentModified>{utc_iso(story.occurred_at)}</contentModified>"
             f'<language tag="{attribute(story.language)}"/><headline>{text(story.headline)}</headline>']
    if picture.credit:
        parts.append(f"<creditline>{text(picture.credit)}</creditline>")
    if picture.caption:
        parts.append(f'<description role="drol:caption">{text(picture.caption)}</description>')
    width = str(picture.width) if picture.width is not None else None
    height = str(picture.height) if picture.height is not None else None
    parts.append("</contentMeta><contentSet>")
    parts.append(element("remoteContent", href=picture.url, contenttype=picture.media_type, rendition="rnd:highRes",
                         width=width, height=height))
    parts.append("</contentSet></newsItem>")
    return "".join(parts)


def _role(role: str | None) -> str:
    code = _ROLE_CODE.sub("-", (role or "author").lower()).strip("-")
    return f"nwcrol:{code or 'author'}"
