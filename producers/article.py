"""The article JSON (docs/article-json.md) and its validation into an article event.

:func:`build_event` checks every field of an article document and collects every problem
as a :class:`FieldError` before raising one :class:`ArticleError`, so that a CMS learns all
that is wrong with an article in one answer. An accepted article is changed only by the
documented cleaning: characters illegal in XML 1.0 and bidi overrides removed from every
text (newswire.sanitize.clean_text), leading/trailing whitespace trimmed, whitespace in the
:data:`SINGLE_LINE` fields collapsed to single spaces (newswire.sanitize.clean_line), the body sanitised
to a safe XHTML fragment (newswire.sanitize.sanitize_body), timestamps converted to UTC at
millisecond precision, categories mapped to IPTC Media Topic subjects.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

from newswire import mediatopics
from newswire.addresses import not_public
from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.events import ARTICLE_ID, ARTICLE_ID_PROBLEM, ENDINGS, MAX_VERSION
from newswire.sanitize import body_text, clean_line, clean_text, sanitize_body, word_count

#: Limits of the article JSON (docs/article-json.md lists them all).
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
MAX_BODY_BYTES = 1_000_000
MAX_URL_CHARS = 2048
MAX_IMAGES = 50
MAX_BYLINES = 20
MAX_TERMS = 50          # categories, keywords, places, subjects (each)
MAX_TERM_CHARS = 100
MAX_IMAGE_PIXELS = 100_000
#: timestamps: none before the Unix epoch; occurred_at and first_created at most MAX_AHEAD after
#: the producer's clock (clock skew between the CMS and here), embargo_until at most MAX_EMBARGO
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_AHEAD = timedelta(days=1)
MAX_EMBARGO = timedelta(days=366)
#: characters that show nothing by themselves (zero-width space, joiners, marks, word joiner,
#: invisible operators, Mongolian vowel separator, Hangul fillers, soft hyphen): a required text
#: of only these is refused
INVISIBLE = re.compile("[\u00ad\u034f\u115f\u1160\u180e\u200b-\u200f\u2060-\u2064\u2066-\u2069"
                       "\u3164\ufeff\uffa0\u061c\\s]*")
TEXT_LIMITS = {         # plain-text fields: maximum characters after cleaning
    "headline": 300, "subheadline": 500, "slugline": 64, "summary": 2000, "provider": 200,
    "copyright_notice": 300, "usage_terms": 2000, "correction_note": 2000, "content_warning": 300,
}
REQUIRED_TEXT = ("headline",)
#: the fields that are one line of text (``[]``: each item of a list): tabs, line breaks and
#: runs of spaces in them become one space (newswire.sanitize.clean_line)
SINGLE_LINE = (
    "headline", "subheadline", "slugline", "provider", "content_warning", "bylines[].name", "bylines[].role",
    "dateline.place", "categories[]", "keywords[]", "places[]", "subjects[].name", "images[].credit",
    "images[].alt_text",
)
#: language[-script][-region](-variant)* of BCP 47, which is what news language tags use
LANGUAGE_TAG = re.compile(
    r"[a-zA-Z]{2,3}(-[a-zA-Z]{4})?(-(?:[a-zA-Z]{2}|[0-9]{3}))?(-(?:[a-zA-Z0-9]{5,8}|[0-9][a-zA-Z0-9]{3}))*"
)
MEDIA_TYPE = re.compile(r"image/[a-z0-9][a-z0-9.+-]{0,62}")
SUBJECT_CODE = re.compile(r"medtop:[0-9]{8}")
ARTICLE_EVENT_TYPES = ("published", "updated", "corrected")  # killed/withdrawn: latest.py

FIELDS = frozenset({
    "article_id", "version", "event_type", "occurred_at", "first_created", "headline", "subheadline",
    "slugline", "bylines", "dateline", "language", "body", "summary", "categories", "subjects",
    "keywords", "places", "urgency", "canonical_url", "images", "embargo_until", "correction_note",
    "provider", "copyright_notice", "usage_terms", "content_warning",
})
IMAGE_FIELDS = frozenset({"url", "caption", "credit", "width", "height", "media_type", "alt_text"})
IMAGE_TEXT_LIMITS = {"caption": 2000, "credit": 300, "alt_text": 1000}
BYLINE_FIELDS = frozenset({"name", "role"})
DATELINE_FIELDS = frozenset({"place", "date"})
SUBJECT_FIELDS = frozenset({"code", "name"})

@dataclass(frozen=True)
class FieldError:
    """One problem with one field, named by its path, e.g. ``images[3].url``."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


class ArticleError(ValueError):
    """An article that was rejected, with every problem found."""

    def __init__(self, errors: list[FieldError]):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    def as_json(self) -> dict[str, list[dict[str, str]]]:
        return {"errors": [e.as_dict() for e in self.errors]}


# --- the document: bytes -> dict ----------------------------------------------------------

def decode_document(raw: bytes) -> dict[str, Any]:
    """An article document from its bytes: strict UTF-8, one JSON object, no duplicate keys.

    Problems with the document as a whole are reported on the field ``$``.
    """
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ArticleError([FieldError("$", f"document is {len(raw)} bytes; at most {MAX_DOCUMENT_BYTES} allowed")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArticleError([FieldError(
            "$", f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} ({exc.reason})")]) from None
    try:
        data = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ArticleError([FieldError("$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]) from None
    except ValueError as exc:
        raise ArticleError([FieldError("$", str(exc))]) from None
    except RecursionError:
        raise ArticleError([FieldError("$", "JSON nested too deeply")]) from None
    if not isinstance(data, dict):
        raise ArticleError([FieldError("$", f"must be a JSON object, not {_json_type(data)}")])
    return data


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- field checks: each returns the clean value, or None after recording the problem ----------

class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, field: str, problem: str) -> None:
        self.errors.append(FieldError(field, problem))

    def text(self, field: str, value: Any, max_chars: int, *, required: bool = False,
             line: bool = False) -> str | None:
        """A cleaned plain text; ``line``: a single-line field (:data:`SINGLE_LINE`). A required
        one must show something: invisible characters alone (:data:`INVISIBLE`) are refused."""
        if value is None:
            if required:
                self.fail(field, "is required")
            return None
        if not isinstance(value, str):
            self.fail(field, f"must be a string, not {_json_type(value)}")
            return None
        cleaned = clean_line(value) if line else clean_text(value).strip()
        if not cleaned:
            if required:
                self.fail(field, "must not be empty")
            return None
        if required and INVISIBLE.fullmatch(cleaned):
            self.fail(field, "has only invisible characters (zero-width spaces, joiners, marks)")
            return None
        if len(cleaned) > max_chars:
            self.fail(field, f"is {len(cleaned)} characters long; at most {max_chars} allowed")
            return None
        return cleaned

    def token(self, field: str, value: Any, pattern: re.Pattern[str], problem: str) -> str | None:
        """A required string that must match ``pattern`` exactly, taken as it is (no cleaning)."""
        if value is None:
            self.fail(field, "is required")
        elif not isinstance(value, str):
            self.fail(field, f"must be a string, not {_json_type(value)}")
        elif not pattern.fullmatch(value):
            self.fail(field, f"{problem}: {value[:40]!r}")
        else:
            return value
        return None

    def integer(self, field: str, value: Any, low: int, high: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"must be an integer, not {_json_type(value)}")
            return None
        if not low <= value <= high:
            self.fail(field, f"must be between {low} and {high}, not {value}")
            return None
        return value

    def url(self, field: str, value: Any, *, required: bool = False) -> str | None:
        text = self.text(field, value, 10 * MAX_URL_CHARS, required=required)
        if text is None:
            return None
        if len(text) > MAX_URL_CHARS:
            self.fail(field, f"is {len(text)} characters long; at most {MAX_URL_CHARS} allowed")
            return None
        if any(ch.isspace() for ch in text):
            self.fail(field, "must not contain whitespace")
            return None
        try:
            parts = urlsplit(text)
        except ValueError as exc:
            self.fail(field, f"is not a valid URL: {exc}")
            return None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            self.fail(field, f"{scheme}: URLs are not allowed; use http or https" if scheme
                      else "must be an absolute http or https URL")
            return None
        if not parts.hostname:
            self.fail(field, "has no host")
            return None
        problem = not_public(parts.hostname)
        if problem:  # partners fetch these URLs (renditions): never send them inside a network
            self.fail(field, problem)
            return None
        return text

    def timestamp(self, field: str, value: Any, *, now: datetime,
                  ahead: timedelta = MAX_AHEAD) -> datetime | None:
        """An ISO 8601 timestamp in UTC, from :data:`EPOCH` to ``now + ahead``."""
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(field, f"must be an ISO 8601 timestamp string, not {_json_type(value)}")
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            self.fail(field, f"is not an ISO 8601 timestamp: {value[:40]!r}")
            return None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.fail(field, "has no UTC offset; give one, e.g. 2020-02-18T09:30:00+02:00 or ...Z")
            return None
        try:
            moment = to_utc_millis(parsed)
        except OverflowError:  # e.g. 9999-12-31T23:30:00-01:00 is in the year 10000 in UTC
            self.fail(field, f"is out of range once converted to UTC (years 1 to 9999): {value[:40]!r}")
            return None
        if moment < EPOCH:
            self.fail(field, f"is before 1970-01-01T00:00:00Z: {value[:40]!r}")
            return None
        if moment > now + ahead:
            self.fail(field, f"is more than {_days(ahead)} after now ({utc_text(now)}): {value[:40]!r}")
            return None
        return moment

    def array(self, field: str, value: Any, max_items: int) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(field, f"must be an array, not {_json_type(value)}")
            return []
        if len(value) > max_items:
            self.fail(field, f"has {len(value)} items; at most {max_items} allowed")
            return []
        return value

    def obj(self, field: str, value: Any, allowed: frozenset[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(field, f"must be an object, not {_json_type(value)}")
            return None
        for key in sorted(set(value) - allowed):
            self.fail(f"{field}.{field_name(key)}", "unknown field")
        return value

    def terms(self, field: str, value: Any) -> list[str]:
        """A list of short plain-text terms, cleaned, without duplicates (first kept)."""
        out: list[str] = []
        for i, item in enumerate(self.array(field, value, MAX_TERMS)):
            term = self.text(f"{field}[{i}]", item, MAX_TERM_CHARS, required=True, line=True)
            if term is not None and term not in out:
                out.append(term)
        return out

    def each(self, field: str, value: Any, max_items: int, check: Callable[[str, Any], Any]) -> list[Any]:
        results = [check(f"{field}[{i}]", item) for i, item in enumerate(self.array(field, value, max_items))]
        return [r for r in results if r is not None]


def field_name(key: str, max_chars: int = 100) -> str:
    """An unknown key as an error may name it: control, format and surrogate characters escaped
    (it is printed to terminals and logs), at most ``max_chars`` characters."""
    name = key if key.isprintable() else "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in key)
    return name[:max_chars]


def to_utc_millis(moment: datetime) -> datetime:
    """``moment`` in UTC, truncated to the millisecond (the precision of the event's timestamps)."""
    utc = moment.astimezone(timezone.utc)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def now_utc() -> datetime:
    return to_utc_millis(datetime.now(timezone.utc))


def utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(span: timedelta) -> str:
    return f"{span.days} day{'s' if span.days != 1 else ''}"


# --- the article ----------------------------------------------------------------------------

def build_event(data: Any, settings: Settings, *, now: datetime | None = None) -> ArticleEvent:
    """Validate and clean an article document into an article event; raise ArticleError with
    every problem otherwise. ``now`` (default: the current time) is the default occurred_at and
    the clock the timestamps' bounds are relative to (:data:`MAX_AHEAD`, :data:`MAX_EMBARGO`)."""
    now = to_utc_millis(now) if now else now_utc()
    check = _Checker()
    if not isinstance(data, dict):
        raise ArticleError([FieldError("$", f"must be a JSON object, not {_json_type(data)}")])
    for key in sorted(set(data) - FIELDS):
        check.fail(field_name(key), "unknown field")
    get = data.get  # null and absent mean the same

    article_id = check.token("article_id", get("article_id"), ARTICLE_ID, ARTICLE_ID_PROBLEM)
    event_type, version = _event_type_and_version(check, get("event_type"), get("version"))
    language = check.token("language", get("language"), LANGUAGE_TAG,
                           "is not a BCP 47 language tag (e.g. en, ar, he, en-GB)")

    texts = {name: check.text(name, get(name), limit, required=name in REQUIRED_TEXT, line=name in SINGLE_LINE)
             for name, limit in TEXT_LIMITS.items()}
    body = _body(check, get("body"))

    occurred_at = check.timestamp("occurred_at", get("occurred_at"), now=now)
    first_created = check.timestamp("first_created", get("first_created"), now=now)
    embargo_until = check.timestamp("embargo_until", get("embargo_until"), now=now, ahead=MAX_EMBARGO)
    if get("occurred_at") is None:
        occurred_at = now
    if get("first_created") is None:
        if version is not None and version > 1:
            check.fail("first_created", f"is required on version {version}: when version 1 was created")
        first_created = occurred_at
    if occurred_at and first_created and first_created > occurred_at:
        check.fail("first_created", "is later than occurred_at")

    if event_type == "corrected" and texts["correction_note"] is None and "correction_note" not in _failed(check):
        check.fail("correction_note", "is required on corrected events: say what was corrected")
    if event_type not in (None, "corrected") and texts["correction_note"] is not None:
        check.fail("correction_note", f"is only allowed on corrected events, not {event_type}")

    provider = texts["provider"] or settings.provider
    if provider is None and "provider" not in _failed(check):
        check.fail("provider", "is not given and no default agency is configured: set NEWSWIRE_PROVIDER")

    categories = check.terms("categories", get("categories"))
    keywords = check.terms("keywords", get("keywords"))
    places = check.terms("places", get("places"))
    subjects = check.each("subjects", get("subjects"), MAX_TERMS, lambda f, v: _subject(check, f, v))
    subjects, keywords = _map_categories(categories, subjects, keywords)
    if len(keywords) > MAX_TERMS:
        check.fail("keywords", f"has {len(keywords)} items with the unmapped categories; at most {MAX_TERMS} allowed")

    urgency = check.integer("urgency", get("urgency"), 1, 9)
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "article_id": article_id,
        "version": version,
        "occurred_at": occurred_at,
        "first_created": first_created,
        "headline": texts["headline"],
        "subheadline": texts["subheadline"],
        "slugline": texts["slugline"],
        "bylines": check.each("bylines", get("bylines"), MAX_BYLINES, lambda f, v: _byline(check, f, v)),
        "dateline": _dateline(check, "dateline", get("dateline")),
        "language": language,
        "body": body,
        "summary": texts["summary"],
        "categories": categories,
        "subjects": subjects,
        "keywords": keywords,
        "places": places,
        "urgency": 5 if urgency is None else urgency,
        "canonical_url": check.url("canonical_url", get("canonical_url")),
        "images": check.each("images", get("images"), MAX_IMAGES, lambda f, v: _image(check, f, v)),
        "embargo_until": embargo_until,
        "correction_note": texts["correction_note"],
        "kill_reason": None,
        "provider": provider,
        "copyright_notice": texts["copyright_notice"],
        "usage_terms": texts["usage_terms"],
        "word_count": word_count(body or ""),  # body is None when its check failed
        "content_warning": texts["content_warning"],
    }
    if check.errors:
        raise ArticleError(check.errors)
    return event


def _failed(check: _Checker) -> set[str]:
    return {e.field for e in check.errors}


def _event_type_and_version(check: _Checker, event_type: Any, version: Any) -> tuple[str | None, int | None]:
    """Versions come from the CMS: optional (1) for a new story, required for updates and corrections."""
    if event_type in ENDINGS:
        action = "kill" if event_type == "killed" else "withdraw"
        check.fail("event_type", f"{event_type} is not published from an article document; use "
                                 f"`newswire publish --{action}` or POST /v1/articles/{{article_id}}/{action}")
        return None, None
    if event_type is not None and event_type not in ARTICLE_EVENT_TYPES:
        check.fail("event_type", f"must be one of {', '.join(ARTICLE_EVENT_TYPES)}, not {str(event_type)[:40]!r}")
        return None, None
    version = check.integer("version", version, 1, MAX_VERSION)
    if version is None and "version" in _failed(check):
        return None, None
    if version is None:
        if event_type in (None, "published"):
            return "published", 1
        check.fail("version", f"is required on {event_type} events: the CMS numbers every version of an article")
        return None, None
    if version == 1:
        if event_type not in (None, "published"):
            check.fail("event_type", f"version 1 is the first publication, so it is published, not {event_type}")
            return None, None
        return "published", 1
    if event_type == "published":
        check.fail("event_type", f"published is version 1; version {version} is updated or corrected")
        return None, None
    return event_type or "updated", version


def _body(check: _Checker, value: Any) -> str | None:
    if value is None:
        check.fail("body", "is required")
        return None
    if not isinstance(value, str):
        check.fail("body", f"must be a string of HTML, not {_json_type(value)}")
        return None
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        check.fail("body", f"is {size} bytes of UTF-8; at most {MAX_BODY_BYTES} allowed")
        return None
    body = sanitize_body(value)
    if not body_text(body).strip():
        check.fail("body", "has no text once sanitised")
        return None
    return body


def _byline(check: _Checker, field: str, value: Any) -> dict[str, Any] | None:
    if check.obj(field, value, BYLINE_FIELDS) is None:
        return None
    name = check.text(f"{field}.name", value.get("name"), 200, required=True, line=True)
    role = check.text(f"{field}.role", value.get("role"), 100, line=True)
    return None if name is None else {"name": name, "role": role}


def _dateline(check: _Checker, field: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if check.obj(field, value, DATELINE_FIELDS) is None:
        return None
    place = check.text(f"{field}.place", value.get("place"), 100, required=True, line=True)
    filed: date | None = None
    raw = value.get("date")
    if raw is not None:
        try:
            if not isinstance(raw, str):
                raise ValueError
            filed = date.fromisoformat(raw)
        except ValueError:
            check.fail(f"{field}.date", f"must be a date as YYYY-MM-DD, not {str(raw)[:40]!r}")
    return None if place is None else {"place": place, "date": filed}


def _image(check: _Checker, field: str, value: Any) -> dict[str, Any] | None:
    if check.obj(field, value, IMAGE_FIELDS) is None:
        return None
    url = check.url(f"{field}.url", value.get("url"), required=True)
    texts = {name: check.text(f"{field}.{name}", value.get(name), limit, line=f"images[].{name}" in SINGLE_LINE)
             for name, limit in IMAGE_TEXT_LIMITS.items()}
    media_type = value.get("media_type", "image/jpeg")
    if not isinstance(media_type, str) or not MEDIA_TYPE.fullmatch(media_type):
        check.fail(f"{field}.media_type", f"must be an image media type such as image/jpeg, not {str(media_type)[:40]!r}")
    image = {
        "url": url,
        **texts,
        "width": check.integer(f"{field}.width", value.get("width"), 1, MAX_IMAGE_PIXELS),
        "height": check.integer(f"{field}.height", value.get("height"), 1, MAX_IMAGE_PIXELS),
        "media_type": media_type,
    }
    return None if url is None else image


def _subject(check: _Checker, field: str, value: Any) -> dict[str, Any] | None:
    if check.obj(field, value, SUBJECT_FIELDS) is None:
        return None
    code = value.get("code")
    if not isinstance(code, str) or not SUBJECT_CODE.fullmatch(code):
        check.fail(f"{field}.code", f"must be an IPTC Media Topic QCode like medtop:11000000, not {str(code)[:40]!r}")
        return None
    concept = mediatopics.lookup(code)
    if concept is None:
        check.fail(f"{field}.code", f"{code} is not in the IPTC Media Topics vocabulary")
        return None
    if concept.retired:
        check.fail(f"{field}.code",
                   f"{code} ({concept.name}) was retired by IPTC on {concept.retired}; use a current Media Topic")
        return None
    name = check.text(f"{field}.name", value.get("name"), 200, line=True)
    return {"code": code, "name": name or concept.name}


def _map_categories(categories: list[str], subjects: list[dict[str, Any]],
                    keywords: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Subjects given by the CMS, then those of the categories (newswire.mediatopics); categories
    the table does not know are added to the keywords. No code or keyword appears twice."""
    unique: list[dict[str, Any]] = []
    codes: set[str] = set()
    for subject in subjects:
        if subject["code"] not in codes:
            codes.add(subject["code"])
            unique.append(subject)
    subjects, keywords = unique, list(keywords)
    for category in categories:
        topic = mediatopics.for_category(category)
        if topic is None:
            if category not in keywords:
                keywords.append(category)
        elif topic.code not in codes:
            codes.add(topic.code)
            subjects.append({"code": topic.code, "name": topic.name})
    return subjects, keywords
