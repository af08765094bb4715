"""The article JSON: rejected inputs name the field and the problem; accepted ones are only cleaned."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timezone

import pytest

from newswire import codec
from newswire.config import Settings
from newswire.producers.article import (MAX_BODY_BYTES, ArticleError, FieldError, build_event,
                                        decode_document)

SETTINGS = Settings(provider="The Media Line")


def good() -> dict:
    return {
        "article_id": "tml-2020-02-18-idlib",
        "headline": "Turkey Continues Talks with Russia on Idlib Fighting",
        "subheadline": "Ankara furthers military build-up in northwestern Syria",
        "language": "en",
        "body": "<p>Talks between Ankara and Moscow continued for a second day on Tuesday.</p>",
        "occurred_at": "2020-02-18T17:47:12.345+02:00",
        "bylines": [{"name": "Kerem Aydin", "role": "reporter"}],
        "dateline": {"place": "ISTANBUL", "date": "2020-02-18"},
        "categories": ["conflict", "diplomacy", "Idlib"],
        "images": [{"url": "https://media.example.org/idlib.jpg", "caption": "A convoy in Sarmada.",
                    "credit": "Rami Al Sayed/AFP via Getty Images", "width": 1024, "height": 683}],
        "canonical_url": "https://themedialine.org/top-stories/idlib/",
        "urgency": 3,
    }


def with_(**changes) -> dict:
    data = good()
    for path, value in changes.items():
        target, *keys = path.split("__")
        if not keys:
            if value is _DELETE:
                data.pop(target)
            else:
                data[target] = value
            continue
        node = data[target]
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        node[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()

BAD = [
    # (case id, document, field, problem fragment)
    ("missing article_id", with_(article_id=_DELETE), "article_id", "is required"),
    ("article_id with space", with_(article_id="tml 1"), "article_id", "a-z, A-Z, 0-9"),
    ("article_id too long", with_(article_id="a" * 129), "article_id", "1 to 128"),
    ("article_id not a string", with_(article_id=42), "article_id", "must be a string, not a number"),
    ("missing headline", with_(headline=_DELETE), "headline", "is required"),
    ("blank headline", with_(headline="  \u0000 "), "headline", "must not be empty"),
    ("headline too long", with_(headline="x" * 301), "headline", "301 characters long; at most 300"),
    ("headline not a string", with_(headline=["a"]), "headline", "must be a string, not an array"),
    ("subheadline too long", with_(subheadline="x" * 501), "subheadline", "at most 500"),
    ("summary too long", with_(summary="x" * 2001), "summary", "at most 2000"),
    ("missing body", with_(body=_DELETE), "body", "is required"),
    ("body only a script", with_(body="<script>alert(1)</script>"), "body", "no text once sanitised"),
    ("body over 1 MB", with_(body="<p>" + "x" * MAX_BODY_BYTES + "</p>"), "body", f"at most {MAX_BODY_BYTES}"),
    ("body not a string", with_(body={"p": "x"}), "body", "must be a string of HTML"),
    ("missing language", with_(language=_DELETE), "language", "is required"),
    ("language not BCP 47", with_(language="English"), "language", "BCP 47"),
    ("language with underscore", with_(language="en_US"), "language", "BCP 47"),
    ("urgency 0", with_(urgency=0), "urgency", "between 1 and 9, not 0"),
    ("urgency 10", with_(urgency=10), "urgency", "between 1 and 9, not 10"),
    ("urgency string", with_(urgency="3"), "urgency", "must be an integer, not a string"),
    ("urgency boolean", with_(urgency=True), "urgency", "must be an integer, not a boolean"),
    ("naive timestamp", with_(occurred_at="2020-02-18T17:47:12"), "occurred_at", "no UTC offset"),
    ("not a timestamp", with_(occurred_at="yesterday"), "occurred_at", "not an ISO 8601 timestamp"),
    ("embargo naive", with_(embargo_until="2020-02-19 06:00"), "embargo_until", "no UTC offset"),
    ("canonical javascript:", with_(canonical_url="javascript:alert(1)"), "canonical_url",
     "javascript: URLs are not allowed"),
    ("canonical relative", with_(canonical_url="/top-stories/idlib/"), "canonical_url", "absolute http or https"),
    ("canonical too long", with_(canonical_url="https://x.org/" + "a" * 2048), "canonical_url", "at most 2048"),
    ("image javascript: url", with_(images__0__url="javascript:alert(1)"), "images[0].url",
     "javascript: URLs are not allowed"),
    ("image data: url", with_(images__0__url="data:image/png;base64,AAAA"), "images[0].url",
     "data: URLs are not allowed"),
    ("image without url", with_(images=[{"caption": "x"}]), "images[0].url", "is required"),
    ("image negative width", with_(images__0__width=-5), "images[0].width", "between 1 and 100000"),
    ("image media type", with_(images__0__media_type="text/html"), "images[0].media_type", "image media type"),
    ("image unknown field", with_(images__0__onclick="x"), "images[0].onclick", "unknown field"),
    ("too many images", with_(images=[{"url": f"https://m.example.org/{i}.jpg"} for i in range(51)]), "images",
     "51 items; at most 50"),
    ("images not an array", with_(images={"url": "https://m.example.org/1.jpg"}), "images", "must be an array"),
    ("byline without name", with_(bylines=[{"role": "reporter"}]), "bylines[0].name", "is required"),
    ("byline as string", with_(bylines=["Kerem Aydin"]), "bylines[0]", "must be an object, not a string"),
    ("dateline bad date", with_(dateline__date="18/02/2020"), "dateline.date", "YYYY-MM-DD"),
    ("dateline without place", with_(dateline={"date": "2020-02-18"}), "dateline.place", "is required"),
    ("category not a string", with_(categories=["conflict", 7]), "categories[1]", "must be a string"),
    ("subject code not medtop", with_(subjects=[{"code": "subj:11000000"}]), "subjects[0].code", "medtop:"),
    ("unknown field", with_(word_count=12), "word_count", "unknown field"),
    ("event_id from outside", with_(event_id="x"), "event_id", "unknown field"),
    ("update without version", with_(event_type="updated"), "version", "required on updated events"),
    ("correction without version", with_(event_type="corrected", correction_note="Fixed a name."), "version",
     "required on corrected events"),
    ("version 0", with_(version=0), "version", "between 1"),
    ("version 1 as update", with_(version=1, event_type="updated"), "event_type", "version 1 is the first publication"),
    ("version 3 as published", with_(version=3, event_type="published", first_created="2020-02-18T10:00:00Z"),
     "event_type", "published is version 1"),
    ("correction without note", with_(version=2, event_type="corrected", first_created="2020-02-18T10:00:00Z"),
     "correction_note", "required on corrected events"),
    ("note on an update", with_(version=2, event_type="updated", correction_note="x",
                                first_created="2020-02-18T10:00:00Z"), "correction_note", "only allowed on corrected"),
    ("update without first_created", with_(version=2), "first_created", "required on version 2"),
    ("first_created after occurred_at", with_(first_created="2020-02-19T00:00:00Z"), "first_created",
     "later than occurred_at"),
    ("kill from a document", with_(event_type="killed"), "event_type", "newswire publish --kill"),
    ("unknown event type", with_(event_type="deleted"), "event_type", "must be one of published, updated, corrected"),
    ("too many keywords", with_(keywords=[f"k{i}" for i in range(51)]), "keywords", "at most 50"),
]


@pytest.mark.parametrize(("document", "field", "problem"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_is_rejected_naming_the_field(document: dict, field: str, problem: str) -> None:
    with pytest.raises(ArticleError) as caught:
        build_event(document, SETTINGS)
    matching = [e for e in caught.value.errors if e.field == field]
    assert matching, f"no error on {field}: {caught.value.errors}"
    assert any(problem in e.problem for e in matching), matching


def test_every_bad_field_is_reported_at_once() -> None:
    document = with_(headline="", language="xx_YY", urgency=12, images__0__url="javascript:x", canonical_url="ftp://x")
    with pytest.raises(ArticleError) as caught:
        build_event(document, SETTINGS)
    assert {e.field for e in caught.value.errors} == {"headline", "language", "urgency", "images[0].url",
                                                      "canonical_url"}
    assert caught.value.as_json()["errors"][0].keys() == {"field", "problem"}


BAD_DOCUMENTS = [
    ("invalid UTF-8", b'{"headline": "caf\xc3\x28"}', "not valid UTF-8: byte 0xc3 at offset 17"),
    ("latin-1 bytes", '{"headline": "Fr\u00e9d\u00e9ric"}'.encode("latin-1"), "offset 16"),
    ("not JSON", b'{"headline": ', "not valid JSON"),
    ("JSON array", b'[{"headline": "x"}]', "must be a JSON object, not an array"),
    ("duplicate key", b'{"headline": "a", "headline": "b"}', "duplicate key 'headline'"),
    ("NaN", b'{"urgency": NaN}', "NaN is not a JSON number"),
    ("nested 100 000 deep", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
]


@pytest.mark.parametrize(("raw", "problem"), [c[1:] for c in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS])
def test_bad_document_is_rejected_with_where(raw: bytes, problem: str) -> None:
    with pytest.raises(ArticleError) as caught:
        decode_document(raw)
    assert caught.value.errors == [FieldError("$", caught.value.errors[0].problem)]
    assert problem in caught.value.errors[0].problem


def test_good_article_becomes_an_event_that_round_trips() -> None:
    event = build_event(decode_document(json.dumps(good()).encode()), SETTINGS)
    assert event["event_type"] == "published" and event["version"] == 1
    assert event["occurred_at"] == datetime(2020, 2, 18, 15, 47, 12, 345000, tzinfo=timezone.utc)
    assert event["first_created"] == event["occurred_at"]
    assert event["dateline"] == {"place": "ISTANBUL", "date": date(2020, 2, 18)}
    assert event["subjects"] == [{"code": "medtop:16000000", "name": "conflict, war and peace"},
                                 {"code": "medtop:20000638", "name": "international relations"}]
    assert event["categories"] == ["conflict", "diplomacy", "Idlib"]
    assert event["keywords"] == ["Idlib"]  # the category the table does not know
    assert event["images"][0]["media_type"] == "image/jpeg"
    assert event["provider"] == SETTINGS.provider
    assert event["word_count"] == 12
    assert codec.decode(codec.encode(event)) == event


def test_a_fresh_installation_names_no_agency_and_says_which_setting_to_set(monkeypatch) -> None:
    monkeypatch.delenv("NEWSWIRE_PROVIDER", raising=False)
    fresh = Settings.from_env()
    assert fresh.provider is None
    with pytest.raises(ArticleError) as caught:
        build_event(good(), fresh)
    (error,) = caught.value.errors
    assert error.field == "provider" and "NEWSWIRE_PROVIDER" in error.problem
    assert build_event(with_(provider="Agence Exemple"), fresh)["provider"] == "Agence Exemple"
    monkeypatch.setenv("NEWSWIRE_PROVIDER", " Agence Exemple ")
    assert build_event(good(), Settings.from_env())["provider"] == "Agence Exemple"


def test_accepted_article_is_not_changed_beyond_cleaning() -> None:
    document = good()
    event = build_event(copy.deepcopy(document), SETTINGS)
    for field in ("article_id", "headline", "subheadline", "language", "canonical_url", "urgency"):
        assert event[field] == document[field]
    assert event["body"] == document["body"]
    assert event["images"][0] | {"media_type": "image/jpeg", "alt_text": None} == \
        document["images"][0] | {"media_type": "image/jpeg", "alt_text": None}


def test_versions_come_from_the_cms() -> None:
    update = build_event(with_(version=4, first_created="2020-02-18T10:00:00+00:00"), SETTINGS)
    assert (update["event_type"], update["version"]) == ("updated", 4)
    assert update["first_created"] == datetime(2020, 2, 18, 10, tzinfo=timezone.utc)
    correction = build_event(with_(version=5, event_type="corrected", correction_note="Corrected a date.",
                                   first_created="2020-02-18T10:00:00Z"), SETTINGS)
    assert (correction["event_type"], correction["correction_note"]) == ("corrected", "Corrected a date.")
    assert build_event(with_(version=1, event_type="published"), SETTINGS)["version"] == 1
    assert build_event(good(), SETTINGS)["event_id"] != build_event(good(), SETTINGS)["event_id"]


def test_body_is_sanitised() -> None:
    hostile = ('<p onclick="steal()">Read <a href="javascript:alert(1)">this</a> and '
               '<a href="https://example.org/x" onmouseover="x()">that</a>.</p>'
               '<script>document.cookie</script><style>p{}</style><iframe src="https://evil.example"></iframe>'
               '<img src=x onerror=alert(1)><p style="color:red">Second.</p>')
    body = build_event(with_(body=hostile), SETTINGS)["body"]
    for bad in ("onclick", "javascript:", "<script", "document.cookie", "<style", "<iframe", "onerror",
                "onmouseover", "style="):
        assert bad not in body
    assert body == '<p>Read <a>this</a> and <a href="https://example.org/x">that</a>.</p><p>Second.</p>'


def test_xml_illegal_characters_are_removed_everywhere() -> None:
    event = build_event(with_(headline="Talks\x00 resume\x0b\ufffe", body="<p>Line\x01 one\ud800</p>",
                              images__0__caption="Convoy\x1f in Sarmada"), SETTINGS)
    assert event["headline"] == "Talks resume"
    assert event["body"] == "<p>Line one</p>"
    assert event["images"][0]["caption"] == "Convoy in Sarmada"


@pytest.mark.parametrize(("language", "headline", "body"), [
    ("he", "השיחות באנקרה על הפסקת האש מתחדשות", "<p dir=\"rtl\">גורמים באנקרה אמרו כי המשא ומתן יימשך.</p>"),
    ("ar", "استئناف المحادثات في أنقرة بشأن وقف إطلاق النار", "<p>قال مسؤولون في أنقرة إن المفاوضات ستستمر\u200f.</p>"),
    ("en", "Talks resume 🇹🇷🤝🇷🇺", "<p>Officials were upbeat 🎉 — “we are close”.</p>"),
])
def test_right_to_left_text_and_emoji_are_kept(language: str, headline: str, body: str) -> None:
    event = build_event(with_(language=language, headline=headline, body=body), SETTINGS)
    assert event["headline"] == headline
    assert event["body"] == body
    assert codec.decode(codec.encode(event))["body"] == body


def test_bidi_override_is_removed_but_marks_kept() -> None:
    event = build_event(with_(headline="Price \u202e321\u202c \u200fok"), SETTINGS)
    assert event["headline"] == "Price 321 \u200fok"
