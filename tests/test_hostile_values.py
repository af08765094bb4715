"""Hostile values at the producer (docs/article-json.md, "Refused and cleaned"): each is refused
with an error naming the field, or cleaned; the timestamps' bounds are relative to the clock
build_event is given."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from newswire.producers.article import MAX_AHEAD, MAX_EMBARGO, ArticleError, build_event
from tests.corpus_cases import FIXTURE_TOPICS
from tests.test_article_validation import SETTINGS, with_

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _refused(document: dict, *, now: datetime = NOW) -> dict[str, str]:
    with pytest.raises(ArticleError) as caught:
        build_event(document, SETTINGS, now=now)
    return {e.field: e.problem for e in caught.value.errors}


REFUSED = [
    ("zero-width headline", with_(headline="\u200b\u200c\u200d\u2060\ufeff"), "headline", "only invisible"),
    ("invisible byline name", with_(bylines__0__name="\u200b \u200e"), "bylines[0].name", "only invisible"),
    ("loopback link", with_(canonical_url="http://127.0.0.1/story"), "canonical_url", "loopback"),
    ("loopback in short form", with_(canonical_url="http://127.1/story"), "canonical_url", "127.0.0.1"),
    ("loopback as one number", with_(canonical_url="http://2130706433/"), "canonical_url", "127.0.0.1"),
    ("IPv6 loopback image", with_(images__0__url="http://[::1]/a.jpg"), "images[0].url", "loopback"),
    ("metadata service image", with_(images__0__url="http://169.254.169.254/latest/meta-data"), "images[0].url",
     "link-local"),
    ("private image", with_(images__0__url="https://10.0.0.7/a.jpg"), "images[0].url", "private"),
    ("IPv4-mapped private", with_(images__0__url="http://[::ffff:192.168.1.1]/a.jpg"), "images[0].url",
     "not a public address"),
    ("IPv6 link-local with zone", with_(images__0__url="http://[fe80::1%25eth0]/a.jpg"), "images[0].url",
     "link-local"),
    ("localhost", with_(canonical_url="http://localhost:8080/x"), "canonical_url", "reserved for local"),
    ("single-label host", with_(images__0__url="http://cms/images/a.jpg"), "images[0].url", "single-label"),
    ("occurred_at in 9999", with_(occurred_at="9999-12-31T00:00:00Z"), "occurred_at", "after now"),
    ("first_created before 1970", with_(first_created="1969-12-31T23:59:59Z", version=2), "first_created",
     "before 1970"),
    ("embargo far ahead", with_(embargo_until=_iso(NOW + MAX_EMBARGO + timedelta(minutes=1))), "embargo_until",
     "366 days after now"),
    ("unknown Media Topic", with_(subjects=[{"code": "medtop:99999999"}]), "subjects[0].code",
     "not in the IPTC Media Topics vocabulary"),
    ("retired Media Topic", with_(subjects=[{"code": "medtop:20000064"}]), "subjects[0].code",
     "retired by IPTC on 2016-04-05"),
]


@pytest.mark.parametrize("document, field, problem", [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED])
def test_hostile_value_is_refused_naming_the_field(document, field, problem):
    errors = _refused(document)
    assert field in errors and problem in errors[field], errors
    assert list(errors) == [field]  # nothing else of the good document is blamed


def test_the_bounds_move_with_the_clock():
    ahead = with_(occurred_at=_iso(NOW + MAX_AHEAD - timedelta(minutes=1)), first_created=_iso(NOW))
    assert build_event(ahead, SETTINGS, now=NOW)["occurred_at"] == NOW + MAX_AHEAD - timedelta(minutes=1)
    assert "occurred_at" in _refused(ahead, now=NOW - timedelta(minutes=2))
    embargo = with_(embargo_until=_iso(NOW + MAX_EMBARGO))
    assert build_event(embargo, SETTINGS, now=NOW)["embargo_until"] == NOW + MAX_EMBARGO
    epoch = with_(occurred_at="1970-01-01T00:00:00Z")
    assert build_event(epoch, SETTINGS, now=NOW)["occurred_at"].year == 1970


def test_public_addresses_and_names_are_accepted():
    for url in ("https://themedialine.org/a.jpg", "http://8.8.8.8/a.jpg", "http://[2606:4700::1111]/a.jpg"):
        assert build_event(with_(images__0__url=url), SETTINGS, now=NOW)["images"][0]["url"] == url


def test_c1_controls_and_replacement_characters_are_cleaned_everywhere():
    dirty = "Caf\u00e9\x80\x9b \ufffdnews\x85here"
    event = build_event(with_(headline=dirty, summary=dirty, bylines__0__name=dirty, images__0__caption=dirty,
                              body=f"<p>{dirty}</p>"), SETTINGS, now=NOW)
    assert event["headline"] == event["bylines"][0]["name"] == "Café news here"  # NEL: a line break
    assert event["summary"] == event["images"][0]["caption"] == "Café news\nhere"
    assert event["body"] == "<p>Café news\nhere</p>"
    assert not any(ch in json.dumps(event, default=str, ensure_ascii=False) for ch in "\x80\x9b\ufffd\x85")


def test_current_media_topics_are_kept_and_named_from_the_vocabulary():
    codes = [{"code": topic["code"]} for topic in FIXTURE_TOPICS]
    event = build_event(with_(subjects=codes, categories=[]), SETTINGS, now=NOW)
    assert event["subjects"] == FIXTURE_TOPICS
