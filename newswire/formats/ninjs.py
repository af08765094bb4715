"""IPTC ninjs 3.1 (News in JSON): one object per article version.

The object holds only properties of the ninjs schema (which rejects unknown ones); anything
a transport needs around it (a partner envelope, a sequence number) belongs outside it.

* ``uri`` is the article's URN (see :mod:`newswire.formats`), ``version`` the article version
  as a string (the schema types it so);
* ``pubStatus`` is ``usable``, ``canceled`` (kill) or ``withheld`` (withdrawal);
  ``embargoedUntil`` carries an embargo;
* a correction's note is a description with role ``correction`` and, with a kill's reason
  and a content warning, the ``edNote``;
* Media Topics are subjects with their IPTC URI, each followed by its IPTC Subject Code;
  keywords and categories without a Media Topic are subjects with ``rel: "keyword"`` (ninjs 3.1
  has no keywords property);
* each image is an association (``type: picture``) with its caption, credit and rendition;
* the body of a right-to-left story is wrapped in ``<div dir="rtl">``; its ``wordCount`` is
  :func:`newswire.sanitize.word_count` (a sealed event's, the producer's count of it).

:mod:`newswire.formats.ninjs2` renders the same object as ninjs 2.2.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, Picture, Story, directed_body, prepare, render_each, utc_iso
from newswire.sanitize import body_text, word_count

SCHEMA_URI = "http://www.iptc.org/std/ninjs/ninjs-schema_3.1.json"
STANDARD = {"name": "ninjs", "version": "3.1", "schema": SCHEMA_URI}


def item(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> dict[str, Any]:
    """The ninjs 3.1 object of ``event``, its ids minted by ``authority`` (see module doc)."""
    return story_object(prepare(event, authority=authority))


def items(events: Iterable[ArticleEvent], *, authority: str = EXAMPLE_AUTHORITY) -> list[dict[str, Any]]:
    """The ninjs objects of ``events`` for a feed, one that cannot be rendered left out
    (:func:`newswire.formats.render_each`)."""
    return render_each(events, story_object, fmt="ninjs", authority=authority)


def story_object(story: Story) -> dict[str, Any]:
    """The ninjs 3.1 object of a prepared story."""
    obj: dict[str, Any] = {
        "uri": story.uri,
        "standard": STANDARD,
        "type": "text",
        "representationType": "full",
        "version": str(story.version),
        "firstCreated": utc_iso(story.first_created),
        "versionCreated": utc_iso(story.occurred_at),
        "contentCreated": utc_iso(story.first_created),
        "pubStatus": story.pub_status,
        "urgency": story.urgency,
        "language": story.language,
        "altIds": [{"role": "article-id", "value": story.article_id}],
        "headlines": [{"role": "main", "value": story.headline}],
        "copyrightHolder": story.provider,
    }
    if story.embargo_until is not None:
        obj["embargoedUntil"] = utc_iso(story.embargo_until)
    if story.subheadline:
        obj["headlines"].append({"role": "subheadline", "value": story.subheadline})
    _optional(obj, copyrightNotice=story.copyright_notice, usageTerms=story.usage_terms,
              slugline=story.slugline, by=story.byline, located=story.dateline_place,
              edNote=" ".join(story.ed_notes) or None)
    descriptions = []
    if story.summary:
        descriptions.append({"role": "summary", "contentType": "text/plain", "value": story.summary})
    if story.event_type == "corrected" and story.correction_note:
        descriptions.append({"role": "correction", "contentType": "text/plain", "value": story.correction_note})
    if descriptions:
        obj["descriptions"] = descriptions
    if story.body:
        words = word_count(story.body) if story.word_count is None else story.word_count
        obj["bodies"] = [{"role": "main", "contentType": "application/xhtml+xml", "value": directed_body(story),
                          "charCount": len(body_text(story.body)), "wordCount": words}]
    if story.people:
        obj["people"] = [{"name": p.name, "rel": p.role or "author"} for p in story.people]
    if story.places:
        obj["places"] = [{"name": place, "rel": "about"} for place in story.places]
    vocabularies = story.vocabularies
    subjects = [{"name": s.name or s.code, "uri": s.uri(vocabularies), "literal": s.code} for s in story.subjects]
    subjects += [{"name": keyword, "rel": "keyword"} for keyword in story.keywords]
    if subjects:
        obj["subjects"] = subjects
    if story.canonical_url:
        obj["renditions"] = [{"name": "web", "href": story.canonical_url, "contentType": "text/html"}]
    if story.pictures:
        obj["associations"] = [_association(story, n, p) for n, p in enumerate(story.pictures, start=1)]
    return obj


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as is; orjson, the bytes ``json.dumps(obj,
    ensure_ascii=False, separators=(",", ":"))`` makes, encoded); ValueError for what UTF-8
    cannot hold (a lone surrogate)."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _association(story: Story, number: int, picture: Picture) -> dict[str, Any]:
    rendition: dict[str, Any] = {"name": "original", "href": picture.url, "contentType": picture.media_type}
    _optional(rendition, width=picture.width, height=picture.height)
    association: dict[str, Any] = {
        "name": f"picture{number}", "rel": "image", "uri": picture.uri, "type": "picture",
        "version": str(story.version), "pubStatus": story.pub_status, "language": story.language,
        "renditions": [rendition],
    }
    descriptions = [{"role": role, "contentType": "text/plain", "value": value}
                    for role, value in (("caption", picture.caption), ("alternativeText", picture.alt_text))
                    if value]
    if descriptions:
        association["descriptions"] = descriptions
    _optional(association, by=picture.credit)
    return association


def _optional(obj: dict[str, Any], **values: Any) -> None:
    obj.update({key: value for key, value in values.items() if value is not None})
