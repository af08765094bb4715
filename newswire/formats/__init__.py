"""Renderers: pure functions from an article event to the bytes of a wire format.

One module per format (``newsml``, ``ninjs``, ``rss``, ``atom``); none does any I/O (but for
the log line of an item left out, below) nor reads any setting. They
share :func:`prepare`, which turns an event read from the topic into a :class:`Story`
whose every field is safe to emit: plain-text fields go through ``clean_text`` again (the
single-line ones through ``clean_line``: NewsML-G2 allows no tab or line break in them) and
the body through ``sanitize_body`` again (insurance against an event that bypassed the
producer). An event whose cleaning seal verified (:mod:`newswire.seal`: the producer cleaned
it, and the consumer that read it checked the HMAC) is taken as cleaned and not cleaned again,
and its ``word_count`` as its body's (the producer counts it by ninjs' rule,
:func:`newswire.sanitize.word_count`; an event that is not sealed has its words counted);
everything else about it is checked the same. Only what cannot be rendered
at all raises :class:`ValueError`, with the field named. Sanitised bodies are memoised
(:func:`clean_body`), since feeds render the same stories again and again.

A feed or newsMessage renders its items with :func:`render_each`: an item that cannot be
rendered is left out, with its reason logged (``item_left_out``), so that one bad event never
takes a whole feed down for every subscriber.

Identifiers (the same in every format, so that a partner can match an item across them):

* article: ``urn:newsml:<authority>:<yyyymmdd of first_created>:<article_id>`` — the
  ``urn:newsml`` namespace of RFC 3085 (ProviderId, DateId, NewsItemId), stable across all
  versions of the article; the article id is percent-encoded where RFC 3085 needs it;
* picture ``n`` of an article: the article's URN + ``-img<n>-<8 hex of sha1(url)>``, so a
  replaced image at the same position gets a new id and an unchanged one keeps it.

The authority is the domain of the installation that mints the ids (``NEWSWIRE_ID_AUTHORITY``,
``Settings.id_authority``); it must stay the same for the life of the feeds (changing it
changes every id). Renderers read no settings: every public renderer takes it as
``authority=`` and :func:`prepare` puts it in the :class:`Story`; it also names newswire's own
vocabularies (``https://<authority>/cv/…``) and the sender of a newsMessage. Its default,
:data:`EXAMPLE_AUTHORITY`, is for tests and examples only: consumers pass the installation's.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable, Iterable, NamedTuple, TypeVar
from urllib.parse import quote, urlsplit

from newswire import logs, mediatopics, seal
from newswire.codec import ArticleEvent
from newswire.events import EVENT_TYPES, check_event_type
from newswire.events import is_embargoed as is_embargoed  # the rule the renderers' callers apply (rss, atom)
from newswire.sanitize import clean_line, clean_text, sanitize_body

log = logs.get(__name__)
T = TypeVar("T")

#: the renderers' default authority (RFC 3085 ProviderId), for tests and examples (module doc)
EXAMPLE_AUTHORITY = "newswire.example.org"

#: event type (newswire.events.EVENT_TYPES) -> NewsML-G2 / ninjs publishing status
PUB_STATUS = {"published": "usable", "updated": "usable", "corrected": "usable",
              "killed": "canceled", "withdrawn": "withheld"}
if set(PUB_STATUS) != set(EVENT_TYPES):
    raise RuntimeError(f"PUB_STATUS does not map the schema's event types {EVENT_TYPES}")
XHTML = "http://www.w3.org/1999/xhtml"
RTL_LANGUAGES = frozenset({"ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "ckb", "dv"})

_IPTC_SCHEMES = {mediatopics.SCHEME: mediatopics.SCHEME_URI,
                 mediatopics.SUBJECT_CODE_SCHEME: mediatopics.SUBJECT_CODE_URI}
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_SPACE = re.compile(r"\s+")
#: characters that may stand unescaped in a URI (RFC 3986 reserved and unreserved, and "%")
_URI_CHARS = "!#$%&'()*+,-./:;=?@[]_~"
_PATH_CHARS = _URI_CHARS.replace("[]", "")
#: article-id characters that ``quote(…, safe="-._~")`` leaves as they are, and ":" (which it encodes)
_ID_CHARS = re.compile(r"[A-Za-z0-9._~:-]*")
_MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
#: an http(s) URL of a named host and only characters that stand unescaped in its path and query
_PLAIN_URL = re.compile(r"(?i:https?)://[A-Za-z0-9.-]+(?::[0-9]*)?(?:[/?#][A-Za-z0-9!#$%&'()*+,\-./:;=?@_~]*)?")


class Person(NamedTuple):
    name: str
    role: str | None


@dataclass(frozen=True, slots=True)
class Subject:
    code: str  #: QCode, e.g. medtop:11000000
    name: str | None

    @property
    def scheme(self) -> str | None:
        """IPTC's scheme URI for a Media Topic or Subject Code, else None."""
        return _IPTC_SCHEMES.get(self.code.partition(":")[0])

    def uri(self, vocabularies: str) -> str:
        """The concept's URI: under IPTC's scheme URI for medtop and subj, else under
        ``vocabularies`` (:attr:`Story.vocabularies`)."""
        return _concept_uri(self.code, vocabularies)


@functools.lru_cache(maxsize=4096)
def _concept_uri(code: str, vocabularies: str) -> str:
    alias, _, local = code.partition(":")
    return f"{_IPTC_SCHEMES.get(alias) or f'{vocabularies}{quote(alias)}/'}{quote(local)}"


class Picture(NamedTuple):
    uri: str  #: stable id of the picture item (see module doc)
    url: str
    caption: str | None
    credit: str | None
    alt_text: str | None
    width: int | None
    height: int | None
    media_type: str


class Story(NamedTuple):
    """An event, checked and cleaned, in the terms the renderers need (a named tuple: made for
    every event rendered, and a tuple is made in half the time of a frozen dataclass)."""

    authority: str  #: the domain that mints the ids (module doc)
    uri: str
    article_id: str
    event_id: str
    event_type: str  #: one of newswire.events.EVENT_TYPES (an unknown type is refused)
    version: int
    occurred_at: datetime
    first_created: datetime
    headline: str
    subheadline: str | None
    slugline: str | None
    people: tuple[Person, ...]
    dateline_place: str | None
    dateline_date: date | None
    language: str
    body: str  #: a sanitised XHTML fragment without namespace ("" for kills/withdrawals)
    summary: str | None
    #: the subjects and keywords, worked out when first read (see :attr:`subjects`)
    terms: Terms
    categories: tuple[str, ...]
    places: tuple[str, ...]
    urgency: int
    canonical_url: str | None
    pictures: tuple[Picture, ...]
    embargo_until: datetime | None
    correction_note: str | None
    kill_reason: str | None
    provider: str
    copyright_notice: str | None
    usage_terms: str | None
    content_warning: str | None
    #: the words of the body as its producer counted them (:func:`newswire.sanitize.word_count`),
    #: for a sealed event; None when they are to be counted
    word_count: int | None

    @property
    def subjects(self) -> tuple[Subject, ...]:
        """Media Topics given by the event, then mapped from categories, each followed by the
        IPTC Subject Code IPTC maps it to (:func:`newswire.mediatopics.subject_code`), once each."""
        return self.terms.worked_out()[0]

    @property
    def keywords(self) -> tuple[str, ...]:
        """Free keywords, then categories without a Media Topic."""
        return self.terms.worked_out()[1]

    @property
    def vocabularies(self) -> str:
        """Base URI of newswire's own controlled vocabularies (declared in every NewsML-G2 item)."""
        return f"https://{self.authority}/cv/"

    @property
    def pub_status(self) -> str:
        return PUB_STATUS[self.event_type]

    @property
    def live(self) -> bool:
        """False for killed and withdrawn stories (which public feeds leave out)."""
        return self.pub_status == "usable"

    @property
    def rtl(self) -> bool:
        return self.language.split("-")[0].lower() in RTL_LANGUAGES

    @property
    def byline(self) -> str | None:
        return ", ".join(p.name for p in self.people) or None

    @property
    def dateline(self) -> str | None:
        if not self.dateline_place:
            return None
        if self.dateline_date is None:
            return self.dateline_place
        return f"{self.dateline_place}, {self.dateline_date.isoformat()}"

    @property
    def notice(self) -> str | None:
        """The short note a reader sees first: the correction, or why the story was pulled."""
        if self.event_type == "corrected" and self.correction_note:
            return f"Correction: {self.correction_note}"
        if not self.live:
            reason = f": {self.kill_reason}" if self.kill_reason else ""
            return f"{'Kill' if self.event_type == 'killed' else 'Withdrawn'}{reason}"
        return None

    @property
    def warning(self) -> str | None:
        return f"Content warning: {self.content_warning}" if self.content_warning else None

    @property
    def ed_notes(self) -> tuple[str, ...]:
        """Notes to the receiving editors: :attr:`notice` and :attr:`warning`."""
        return tuple(filter(None, (self.notice, self.warning)))


class _Cleaning(NamedTuple):
    """How :func:`prepare` cleans the texts of an event: each is None when absent or blank."""

    text: Callable[[object], str | None]  #: a plain text
    line: Callable[[object], str | None]  #: a single-line text
    body: Callable[[str], str]  #: the body (a sanitised XHTML fragment)


def prepare(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> Story:
    """Check and clean ``event`` for rendering with ids minted by ``authority``; ValueError
    names a field that cannot be rendered. A sealed event (module doc) is checked, not cleaned."""
    sealed = seal.is_clean(event)
    clean = _SEALED if sealed else _CLEANING
    text, line, get = clean.text, clean.line, event.get
    article_id = _required_text(event, "article_id", clean)
    version = get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"version: must be an integer >= 1, got {version!r}")
    first_created = _instant(event, "first_created")
    language = text(get("language")) or ""
    if not _LANGUAGE.fullmatch(language):
        raise ValueError(f"language: not a BCP 47 tag: {language!r}")
    event_type = check_event_type(get("event_type"))
    live = PUB_STATUS[event_type] == "usable"
    uri = article_uri(article_id, first_created, authority=authority)
    categories = tuple(filter(None, map(line, get("categories") or ())))
    dateline = get("dateline") or {}
    urgency = get("urgency")
    body = clean.body(get("body") or "") if live else ""
    word_count = get("word_count") if sealed and body else None
    if not isinstance(word_count, int) or isinstance(word_count, bool) or word_count < 0:
        word_count = None  # counted by the renderer that says it
    return Story(
        authority=authority,
        uri=uri,
        article_id=article_id,
        event_id=text(get("event_id")) or "",
        event_type=event_type,
        version=version,
        occurred_at=_instant(event, "occurred_at"),
        first_created=first_created,
        headline=_required_text(event, "headline", clean),
        subheadline=line(get("subheadline")),
        slugline=line(get("slugline")),
        people=tuple(Person(name, line(b.get("role"))) for b in get("bylines") or ()
                     if (name := line(b.get("name")))),
        dateline_place=line(dateline.get("place")),
        dateline_date=dateline.get("date") if isinstance(dateline.get("date"), date) else None,
        language=language,
        body=body,
        summary=text(get("summary")),
        terms=Terms(get("subjects"), get("keywords"), categories, clean),
        categories=categories,
        places=tuple(filter(None, map(line, get("places") or ()))),
        urgency=min(9, max(1, urgency)) if isinstance(urgency, int) else 5,
        canonical_url=_web_url(get("canonical_url"), clean),
        pictures=tuple(_pictures(get("images") or (), uri, clean)),
        embargo_until=_instant(event, "embargo_until", required=False),
        correction_note=text(get("correction_note")),
        kill_reason=text(get("kill_reason")),
        provider=_required_text(event, "provider", clean),
        copyright_notice=text(get("copyright_notice")),
        usage_terms=text(get("usage_terms")),
        content_warning=line(get("content_warning")),
        word_count=word_count,
    )


def render_each(events: Iterable[ArticleEvent], render: Callable[[Story], T], *, fmt: str,
                authority: str = EXAMPLE_AUTHORITY) -> list[T]:
    """``render`` of each event's story, in order; an event that cannot be prepared or rendered
    (``ValueError``) is left out and logged with the reason."""
    rendered = []
    for event in events:
        try:
            rendered.append(render(prepare(event, authority=authority)))
        except ValueError as exc:
            log.warning("item_left_out", format=fmt, article_id=event.get("article_id"),
                        version=event.get("version"), event_id=event.get("event_id"), reason=str(exc))
    return rendered


def article_uri(article_id: str, first_created: datetime, *, authority: str) -> str:
    """The stable id of an article in every format (see module doc)."""
    moment = _utc(first_created)
    # as strftime("%Y%m%d") writes it (glibc: the year 1 as "1"; ids never change), without its cost
    day = "%d%02d%02d" % (moment.year, moment.month, moment.day) if moment.year >= 1000 else moment.strftime("%Y%m%d")
    local = article_id.replace(":", "%3A") if _ID_CHARS.fullmatch(article_id) else quote(article_id, safe="-._~")
    return f"urn:newsml:{authority}:{day}:{local}"


def utc_iso(moment: datetime) -> str:
    """``2026-11-26T08:00:00Z`` (ISO 8601 / RFC 3339 in UTC, whole seconds)."""
    # as isoformat(timespec="seconds") writes it (not strftime("%Y"): glibc writes the year 1 as
    # "1", which is no xs:dateTime), in a third of its time
    t = _utc(moment)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (t.year, t.month, t.day, t.hour, t.minute, t.second)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (as it is when it already is: decoded events' times are)."""
    return moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)


#: bodies up to this size are memoised by clean_body (bigger ones are rare and costly to keep)
MEMO_BODY_CHARS = 32_768


@functools.lru_cache(maxsize=512)
def _memo_sanitize(body: str) -> str:
    return sanitize_body(body)


def clean_body(body: str) -> str:
    """``sanitize_body(body)``, memoised for the last 512 bodies of up to :data:`MEMO_BODY_CHARS`
    characters (a few MB for ordinary stories; 130 MB at the very worst)."""
    return _memo_sanitize(body) if len(body) <= MEMO_BODY_CHARS else sanitize_body(body)


def forget_bodies() -> None:
    """Empty :func:`clean_body`'s memo (benchmarks measure the cold path with it)."""
    _memo_sanitize.cache_clear()


def directed_body(story: Story) -> str:
    """The body fragment; a right-to-left story's inside ``<div dir="rtl">``, for the formats that
    carry the body as a string with no direction of its own (ninjs, RSS ``content:encoded``):
    a reader must not guess it from the first letter."""
    return f'<div dir="rtl">{story.body}</div>' if story.rtl else story.body


def _text(value: object) -> str | None:
    """A cleaned plain text, or None when absent or blank."""
    if not isinstance(value, str):
        return None
    cleaned = clean_text(value).strip()
    return cleaned or None


def _line(value: object) -> str | None:
    """A cleaned single-line text (whitespace collapsed to single spaces), or None when absent or blank."""
    return (clean_line(value) or None) if isinstance(value, str) else None


def _sealed_text(value: object) -> str | None:
    """A text of a sealed event (cleaned by the producer, which also collapsed its single lines)."""
    return (value.strip() or None) if isinstance(value, str) else None


_CLEANING = _Cleaning(_text, _line, lambda body: clean_body(body))
_SEALED = _Cleaning(_sealed_text, _sealed_text, lambda body: body)


def _required_text(event: ArticleEvent, field: str, clean: _Cleaning) -> str:
    """A single-line text that must be there (article id, headline, provider)."""
    value = clean.line(event.get(field))
    if value is None:
        raise ValueError(f"{field}: missing or empty")
    return value


def _instant(event: ArticleEvent, field: str, *, required: bool = True) -> datetime | None:
    value = event.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"{field}: not a datetime: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field}: naive datetime (needs a time zone)")
    return value


def _web_url(value: object, clean: _Cleaning) -> str | None:
    """``value`` as an ASCII URI (RFC 3986) when it is an absolute http(s) URL, else None."""
    url = clean.text(value)
    if url is None:
        return None
    if _PLAIN_URL.fullmatch(url):  # what the rest would give back as it is
        return url
    if _SPACE.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: no URL, not a reason to lose the story
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    # brackets stand only around an IPv6 host: in the path or query they are percent-encoded
    # (an xs:anyURI with one is invalid NewsML-G2)
    cut = len(parts.scheme) + 3 + len(parts.netloc)
    return quote(url[:cut], safe=_URI_CHARS) + quote(url[cut:], safe=_PATH_CHARS)


class Terms:
    """The subjects and keywords of an event (:attr:`Story.subjects`, :attr:`Story.keywords`),
    worked out from the event's lists when first read (so as those lists are then): RSS reads
    neither, so a feed of it never pays for them. Equal when what they work out to is equal."""

    __slots__ = ("_given", "_worked_out")

    def __init__(self, subjects: object, keywords: object, categories: tuple[str, ...], clean: _Cleaning) -> None:
        self._given: tuple | None = (subjects, keywords, categories, clean)
        self._worked_out: tuple[tuple[Subject, ...], tuple[str, ...]] = ((), ())

    def worked_out(self) -> tuple[tuple[Subject, ...], tuple[str, ...]]:
        """(subjects, keywords)."""
        if self._given is not None:
            self._worked_out, self._given = _subjects_and_keywords(*self._given), None
        return self._worked_out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Terms) and self.worked_out() == other.worked_out()

    def __hash__(self) -> int:
        return hash(self.worked_out())

    def __repr__(self) -> str:
        subjects, keywords = self.worked_out()
        return f"Terms(subjects={subjects!r}, keywords={keywords!r})"


def _subjects_and_keywords(given_subjects: object, given_keywords: object, categories: tuple[str, ...],
                           clean: _Cleaning) -> tuple[tuple[Subject, ...], tuple[str, ...]]:
    """The subjects (given, then mapped from the cleaned ``categories``) and the keywords."""
    subjects: dict[str, Subject] = {}
    for given in given_subjects or ():
        code = clean.text(given.get("code"))
        if code and not _SPACE.search(code) and ":" in code.strip(":"):
            subjects.setdefault(code, Subject(code, clean.line(given.get("name"))))
    keywords = list(filter(None, map(clean.line, given_keywords or ())))
    for category in categories:
        topic = _for_category(category)
        if topic is None:
            keywords.append(category)
        else:
            subjects.setdefault(topic.code, Subject(topic.code, topic.name))
    return _with_subject_codes(subjects.values()), tuple(dict.fromkeys(keywords))


def _with_subject_codes(subjects: Iterable[Subject]) -> tuple[Subject, ...]:
    """Each subject followed by the Subject Code of a Media Topic: wire-ingest systems that read
    only Subject Codes (Superdesk's NewsML-G2 parser) keep those."""
    out: dict[str, Subject] = {}
    for subject in subjects:
        out.setdefault(subject.code, subject)
        mapped = _subject_code(subject.code)
        if mapped is not None:
            out.setdefault(mapped.code, mapped)
    return tuple(out.values())


#: the agency's category → its Media Topic (a table: kept)
_for_category = functools.lru_cache(maxsize=4096)(mediatopics.for_category)


@functools.lru_cache(maxsize=4096)
def _subject_code(code: str) -> Subject | None:
    """The IPTC Subject Code a Media Topic maps to (from the vocabulary, so kept), else None."""
    concept = mediatopics.subject_code(code)
    return None if concept is None else Subject(concept.subject_code, clean_line(concept.subject_name))


def _pictures(images, article: str, clean: _Cleaning):
    for index, image in enumerate(images, start=1):
        url = _web_url(image.get("url"), clean)
        if url is None:  # nothing a partner could fetch: leave the picture out
            continue
        media_type = clean.text(image.get("media_type")) or "image/jpeg"
        if not _MEDIA_TYPE.fullmatch(media_type):
            media_type = "image/jpeg"
        digest = hashlib.sha1(url.encode()).hexdigest()[:8]
        yield Picture(
            uri=f"{article}-img{index}-{digest}", url=url, caption=clean.text(image.get("caption")),
            credit=clean.line(image.get("credit")), alt_text=clean.line(image.get("alt_text")),
            width=_positive(image.get("width")), height=_positive(image.get("height")),
            media_type=media_type,
        )


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
