"""Atom 1.0 (RFC 4287), with RFC 6721 tombstones for kills and withdrawals.

Per entry: ``id`` (the article's URN, the same for every version), ``title``, ``updated``
(this version), ``published`` (first publication), one ``author`` per byline (the provider
when there is none: RFC 4287 requires an author), ``link rel="alternate"`` to the canonical
URL and ``rel="enclosure"`` per image (its caption as title), a ``category`` per category and
per subject (term = QCode; scheme = IPTC's URI for Media Topics and Subject Codes), ``summary``
(a correction note first, then the summary), ``content type="xhtml"`` (the body in an XHTML
``div``, ``dir="rtl"`` for right-to-left text) and ``rights``.

A killed or withdrawn story is an ``at:deleted-entry`` (RFC 6721) in place of its entry:
``ref`` = the entry's id, ``when`` = the kill's time, ``at:by`` the provider and
``at:comment`` the notice (``Kill: <reason>``), so that a reader removes the story it shows.
Embargoes are the caller's business: see :func:`newswire.formats.is_embargoed`.

Written as text (:mod:`newswire.formats.markup`), in the bytes lxml would make of the same tree.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Sequence

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, XHTML, Story, prepare, render_each, utc_iso
from newswire.formats.markup import attribute, document, element, text
from newswire.sanitize import clean_text

ATOM = "http://www.w3.org/2005/Atom"
TOMBSTONES = "http://purl.org/atompub/tombstones/1.0"
GENERATOR = "newswire"


def feed(events: Sequence[ArticleEvent], *, title: str, link: str, self_url: str, feed_id: str,
         updated: datetime, authority: str = EXAMPLE_AUTHORITY, hub: str | None = None) -> bytes:
    """An Atom feed with an entry per live event and a tombstone per kill or withdrawal, in
    the order given (one that cannot be rendered left out: :func:`newswire.formats.render_each`);
    ``hub``: its WebSub hub."""
    parts = [f'<feed xmlns="{ATOM}" xmlns:at="{TOMBSTONES}">', element("id", clean_text(feed_id)),
             element("title", clean_text(title)), element("updated", utc_iso(updated)),
             element("link", rel="self", type="application/atom+xml", href=clean_text(self_url)),
             element("link", rel="alternate", type="text/html", href=clean_text(link))]
    if hub:
        parts.append(element("link", rel="hub", href=clean_text(hub)))
    parts.append(element("generator", GENERATOR))
    entries = render_each(events, lambda story: _markup(story).encode(), fmt="atom", authority=authority)
    return b"".join([document("".join(parts)), *entries, b"</feed>"])


def fragment(event: ArticleEvent, authority: str = EXAMPLE_AUTHORITY) -> bytes:
    """The entry (or tombstone) of ``event`` as it stands in a :func:`feed` (ValueError when it
    cannot be rendered)."""
    return _markup(prepare(event, authority=authority)).encode()


def _markup(story: Story) -> str:
    return _entry(story) if story.live else _tombstone(story)


def _entry(story: Story) -> str:
    """Every text here is non-empty (:func:`~newswire.formats.prepare` gives None for a blank one),
    so each is written ``<tag>…</tag>`` as :func:`markup.element` would."""
    parts = [f'<entry xml:lang="{attribute(story.language)}"><id>{text(story.uri)}</id><title>{text(story.headline)}</title>'
             f"<updated>{utc_iso(story.occurred_at)}</updated><published>{utc_iso(story.first_created)}</published>"]
    parts += [_author(name) for name in [p.name for p in story.people] or [story.provider]]
    if story.canonical_url:
        parts.append(f'<link rel="alternate" type="text/html" href="{attribute(story.canonical_url)}"/>')
    parts += [element("link", rel="enclosure", type=picture.media_type, href=picture.url, title=picture.caption)
              for picture in story.pictures]
    parts += [_category(category) for category in story.categories]
    parts += [_subject(subject.code, subject.scheme, subject.name) for subject in story.subjects]
    summary = " ".join(filter(None, (story.notice, story.summary)))
    if summary:
        parts.append(f"<summary>{text(summary)}</summary>")
    if story.body:
        direction = ' dir="rtl"' if story.rtl else ""
        parts.append(f'<content type="xhtml"><div xmlns="{XHTML}"{direction}>{story.body}</div></content>')
    if story.copyright_notice:
        parts.append(f"<rights>{text(story.copyright_notice)}</rights>")
    parts.append("</entry>")
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def _author(name: str) -> str:
    """The ``author`` of a byline (or of the provider): the same few names recur, so kept."""
    return f"<author>{element('name', name)}</author>"


@functools.lru_cache(maxsize=4096)
def _category(term: str) -> str:
    """The ``category`` of one of the agency's categories (a short list: kept)."""
    return element("category", term=term)


@functools.lru_cache(maxsize=4096)
def _subject(code: str, scheme: str | None, name: str | None) -> str:
    """The ``category`` of a concept (most are from a vocabulary, so their markup is kept)."""
    return element("category", term=code, scheme=scheme, label=name)


def _tombstone(story: Story) -> str:
    return (f'<at:deleted-entry ref="{attribute(story.uri)}" when="{utc_iso(story.occurred_at)}">'
            f"<at:by>{element('name', story.provider)}</at:by>{element('at:comment', story.notice)}</at:deleted-entry>")
