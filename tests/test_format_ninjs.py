"""ninjs renderer: every output of the test corpus is valid against the official ninjs 3.1
JSON schema (GeoJSON resolved from the local copy, never the network), formats checked."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from newswire.formats import ninjs, prepare
from tests.corpus_cases import FIXTURE, XHTML, assert_safe_xhtml, body_paragraph_texts, cases, hostile
from tests.official_schemas import ninjs_validator

CASES = cases()
VALIDATOR = ninjs_validator()


def test_the_validator_is_strict():
    """Unknown properties, bad enums and bad date-times fail: the checks below mean something."""
    assert VALIDATOR.is_valid({"uri": "urn:newsml:example.org:20260101:a"})
    assert not VALIDATOR.is_valid({"uri": "urn:newsml:example.org:20260101:a", "sequence": 1})
    assert not VALIDATOR.is_valid({"uri": "urn:x:a", "pubStatus": "killed"})
    assert not VALIDATOR.is_valid({"uri": "urn:x:a", "versionCreated": "yesterday"})
    assert not VALIDATOR.is_valid({"uri": "not a uri"})
    assert not VALIDATOR.is_valid({"uri": "urn:x:a", "places": [{"name": "x", "geoJSON": {"type": "Nope"}}]})


@pytest.mark.parametrize("name", CASES)
def test_every_case_is_valid_ninjs_and_round_trips_as_compact_utf8(name):
    event = CASES[name]
    obj = ninjs.item(event)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(obj)]
    assert errors == []
    data = ninjs.dumps(obj)
    assert json.loads(data.decode("utf-8")) == obj
    assert b"\n" not in data and b", " not in data[:200] and b"\\u" not in data
    story = prepare(event)
    assert obj["uri"] == story.uri and obj["version"] == str(event["version"])
    assert obj["headlines"][0] == {"role": "main", "value": story.headline}
    assert obj["pubStatus"] == {"killed": "canceled", "withdrawn": "withheld"}.get(event["event_type"], "usable")
    if story.live:
        body = etree.fromstring(f'<div xmlns="{XHTML}">{obj["bodies"][0]["value"]}</div>')
        assert_safe_xhtml(body)
        assert body_paragraph_texts(body)
    else:
        assert "bodies" not in obj


def test_semantics_of_versions():
    items = {name: ninjs.item(CASES[name]) for name in ("plain", "updated", "corrected", "killed", "withdrawn")}
    assert len({items[n]["uri"] for n in ("plain", "updated", "corrected", "killed")}) == 1
    assert [items[n]["version"] for n in ("plain", "updated", "corrected", "killed")] == ["1", "2", "3", "4"]
    correction = [d for d in items["corrected"]["descriptions"] if d["role"] == "correction"]
    assert correction[0]["value"] == "An earlier version misspelled the minister's name."
    assert items["corrected"]["edNote"].startswith("Correction: An earlier version")
    assert items["killed"]["pubStatus"] == "canceled" and "Legal" in items["killed"]["edNote"]
    assert items["withdrawn"]["pubStatus"] == "withheld" and "Pending verification" in items["withdrawn"]["edNote"]
    assert "edNote" not in items["plain"] and "embargoedUntil" not in items["plain"]
    assert ninjs.item(CASES["embargoed"])["embargoedUntil"] == "2026-11-26T11:00:00Z"


def test_subjects_places_people_and_pictures():
    obj = ninjs.item(CASES["fixture"])
    topics = [s["literal"] for s in obj["subjects"] if "uri" in s]
    assert topics[:4] == ["medtop:20000056", "subj:16002000", "medtop:20000073", "subj:11002003"]
    assert {"name": "armed conflict", "uri": "http://cv.iptc.org/newscodes/subjectcode/16002000",
            "literal": "subj:16002000"} in obj["subjects"]
    assert {"name": "Idlib", "rel": "keyword"} in obj["subjects"]
    assert [p["name"] for p in obj["places"]] == FIXTURE["places"]
    assert obj["headlines"][1] == {"role": "subheadline", "value": FIXTURE["subheadline"]}
    body = etree.fromstring(f'<div xmlns="{XHTML}">{obj["bodies"][0]["value"]}</div>')
    assert body_paragraph_texts(body) == FIXTURE["body_paragraphs"]
    (picture,) = obj["associations"]
    assert picture["type"] == "picture" and picture["by"] == FIXTURE["image"]["credit"]
    assert picture["descriptions"][0] == {"role": "caption", "contentType": "text/plain",
                                          "value": FIXTURE["image"]["caption"]}
    assert picture["renditions"][0]["href"].endswith("sarmada.jpg")
    arabic = ninjs.item(CASES["arabic"])
    assert arabic["people"] == [{"name": "سارة العلي", "rel": "مراسلة"}] and arabic["language"] == "ar"
    assert len(ninjs.item(CASES["many_images"])["associations"]) == 25


def test_hostile_event_is_valid_and_safe():
    obj = ninjs.item(hostile())
    assert VALIDATOR.is_valid(obj)
    assert obj["headlines"][0]["value"] == "Breaking news <script>alert(1)</script> & more"
    assert "renditions" not in obj  # the javascript: canonical URL is dropped
    assert [a["renditions"][0]["href"] for a in obj["associations"]] == ["https://media.example.org/ok.jpg"]
    text = ninjs.dumps(obj).decode()
    assert "javascript:" not in text and "onclick" not in text and "\x00" not in text and "\u202e" not in text
