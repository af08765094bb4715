"""The test corpus of the renderers: one event per case every format must render validly,
the fixture story, and the checks shared by the format tests.

Cases: a plain story, a story with pictures, an update, a correction, a kill, a withdrawal,
an embargoed story, Arabic and Hebrew (names and right-to-left text), emoji, a content
warning, a 1 MB body, no images, many images, a story with no optional fields, and a
HOSTILE event that bypassed the producer (script, event handlers, javascript: links,
XML-illegal control characters, bidi overrides).

:func:`wire_corpus` is the corpus the wire clients read (tests/test_wire_clients.py): these
cases, the fixture's update, correction, kill and withdrawal, an event with hostile values in
each field in turn, and generated stories of every event type.
"""

from __future__ import annotations

import functools
import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from lxml import etree

from newswire import corpus, mediatopics, run
from newswire.codec import ArticleEvent

SHARED = Path(__file__).resolve().parents[2] / "shared"
STANDARDS = SHARED / "standards"
FIXTURE = json.loads((SHARED / "fixtures" / "tml-idlib-expected.json").read_text(encoding="utf-8"))
XHTML = "http://www.w3.org/1999/xhtml"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
#: the Media Topics an editor gives the fixture story (newswire run publishes the page with them)
FIXTURE_TOPICS = [{"code": code, "name": mediatopics.lookup(code).name} for code in run.FIXTURE_TOPICS]

HOSTILE_HEADLINE = "Breaking\x00\x07 news\u202e <script>alert(1)</script> & more\x1b"
HOSTILE_BODY = (
    '<p onclick="steal()">First paragraph survives.</p><script>alert("x")</script>'
    '<img src="x" onerror="alert(1)"><a href="javascript:alert(1)">bad link</a>'
    '<p style="color:red" onmouseover="x()">Second\x0b paragraph\ufffe survives.</p>'
    '<iframe src="https://evil.example/"></iframe><svg onload="alert(1)"><circle/></svg>'
)


def _base(article_id: str, **changes) -> ArticleEvent:
    rng = random.Random(article_id)
    event = corpus.story(rng, article_id, language="en", images=1,
                         occurred_at=datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc))
    event.update(changes)
    return event


def fixture_story() -> ArticleEvent:
    """The clean story of tml-idlib-page.txt as a version 1 event."""
    when = datetime(2020, 2, 18, 12, 0, tzinfo=timezone.utc)
    return _base(
        "tml-idlib-2020", occurred_at=when, first_created=when,
        headline=FIXTURE["headline"], subheadline=FIXTURE["subheadline"], slugline="TURKEY-SYRIA-IDLIB",
        bylines=[], dateline={"place": "ISTANBUL", "date": date(2020, 2, 18)},
        body="".join(f"<p>{_escape(p)}</p>" for p in FIXTURE["body_paragraphs"]),
        summary=FIXTURE["subheadline"], categories=["conflict", "diplomacy"], keywords=["Idlib"],
        subjects=[dict(topic) for topic in FIXTURE_TOPICS],
        places=FIXTURE["places"], provider=FIXTURE["provider"], canonical_url="https://themedialine.org/idlib",
        images=[{"url": "https://themedialine.org/wp-content/uploads/2020/02/sarmada.jpg",
                 "caption": FIXTURE["image"]["caption"], "credit": FIXTURE["image"]["credit"],
                 "width": 1200, "height": 800, "media_type": "image/jpeg", "alt_text": None}],
        copyright_notice="© 2020 The Media Line",
    )


@functools.cache
def _long_body() -> str:
    """The long case's 1 MB body, generated once per process (a string: each case stays a fresh dict)."""
    return corpus.story(random.Random(9), "x", language="en", body_bytes=1_000_000)["body"]


def cases() -> dict[str, ArticleEvent]:
    """Every case of the corpus, by name (fresh dicts on each call)."""
    plain = _base("case-plain")
    pictures = _base("case-pictures", images=[
        {"url": f"https://media.example.org/case-pictures/{i}.jpg", "caption": f"Caption {i}",
         "credit": f"Photographer {i}/Agency", "width": 1600, "height": 900, "media_type": "image/jpeg",
         "alt_text": f"Alt {i}"} for i in range(3)])
    updated = corpus.next_version(plain, "updated", headline="Updated: " + plain["headline"])
    corrected = corpus.next_version(updated, "corrected", correction_note="An earlier version misspelled the minister's name.")
    killed = corpus.next_version(corrected, "killed", kill_reason="Legal: the story must not be used.")
    withdrawn = corpus.next_version(_base("case-withdrawn"), "withdrawn", kill_reason="Pending verification.")
    arabic = _base("case-arabic", language="ar", headline="استئناف المحادثات في إدلب وسط ضغوط إقليمية",
                   subheadline="أنقرة تعزز حشدها العسكري", bylines=[{"name": "سارة العلي", "role": "مراسلة"}],
                   body="<p>قال مسؤولون في دمشق إن المفاوضات ستستمر.</p><p>«لسنا بعيدين عن تفاهم»، قال دبلوماسي.</p>",
                   summary="المفاوضات ستستمر.", dateline={"place": "دمشق", "date": date(2026, 11, 20)})
    hebrew = _base("case-hebrew", language="he", headline="השיחות בירושלים מתחדשות",
                   bylines=[{"name": "יעל ברק", "role": "כתבת"}, {"name": "Ahmad Khalil", "role": None}],
                   body="<p>גורמים בירושלים אמרו כי המשא ומתן יימשך\u200f.</p>", summary="המשא ומתן יימשך.")
    emoji = _base("case-emoji", headline="Fans celebrate 🎉🇵🇸🇮🇱 in the streets 👏🏽",
                  body="<p>Crowds 🥳 gathered; one sign read “peace ☮️”.</p>", summary="Crowds 🥳 gathered.")
    long = _base("case-long", body=_long_body())
    return {
        "plain": plain,
        "pictures": pictures,
        "updated": updated,
        "corrected": corrected,
        "killed": killed,
        "withdrawn": withdrawn,
        "embargoed": _base("case-embargoed", embargo_until=NOW + timedelta(hours=2)),
        "arabic": arabic,
        "hebrew": hebrew,
        "emoji": emoji,
        "content_warning": _base("case-warning", content_warning="graphic descriptions of violence"),
        "long": long,
        "no_images": _base("case-no-images", images=[]),
        "many_images": _base("case-many-images", images=[
            {"url": f"https://media.example.org/many/{i}.jpg", "caption": None, "credit": None, "width": None,
             "height": None, "media_type": "image/jpeg", "alt_text": None} for i in range(25)]),
        "minimal": _base("case-minimal", subheadline=None, slugline=None, bylines=[], dateline=None, summary=None,
                         categories=[], keywords=[], places=[], canonical_url=None, images=[], copyright_notice=None,
                         usage_terms=None),
        "hostile": hostile(),
        "fixture": fixture_story(),
    }


def hostile() -> ArticleEvent:
    """An event that bypassed the producer's cleaning."""
    return _base(
        "case-hostile", headline=HOSTILE_HEADLINE, subheadline="Sub\x01heading\u202d", body=HOSTILE_BODY,
        summary="Summary\x08 with\x0c controls", bylines=[{"name": "Eve\x00 <b>Hacker</b>", "role": "re porter\x07"}],
        canonical_url="javascript:alert(1)", slugline="SLUG\x1f",
        images=[{"url": "javascript:alert(1)", "caption": "c", "credit": "x", "width": 1, "height": 1,
                 "media_type": "image/jpeg", "alt_text": None},
                {"url": "https://media.example.org/ok.jpg", "caption": "Caption\x02 <script>x</script>",
                 "credit": "Credit\x03", "width": -5, "height": 10, "media_type": "text/html; evil",
                 "alt_text": None}],
        keywords=["kw\x00"], categories=["politics", "unknown-cat\x1b"],
    )


#: a value for every kind of text field that only the producer's cleaning would have kept out:
#: a tab and line break, a C1 control, U+FFFD, a bidi override, a zero-width space, markup
HOSTILE_TEXT = "Tab\there\nnext\x85 line \x9b C1 \ufffd \u202e over \u200b <b>bold</b> <!-- c --> & end"
HOSTILE_URLS = ["javascript:alert(1)", "http://[2606:4700::1111]/ipv6.jpg", "http://[::1/", "http://127.0.0.1/x.jpg",
                "https://media.example.org/a b.jpg"]


def hostile_fields() -> dict[str, ArticleEvent]:
    """One event per field, with a hostile value in that field (an event that bypassed the producer)."""
    text_fields = ["headline", "subheadline", "slugline", "summary", "provider", "copyright_notice", "usage_terms",
                   "correction_note", "content_warning"]
    out = {f"hostile-{name}": _base(f"hostile-{name.replace('_', '-')}", **{name: HOSTILE_TEXT})
           for name in text_fields}
    hostile_image = {"url": "https://media.example.org/h.jpg", "caption": HOSTILE_TEXT, "credit": HOSTILE_TEXT,
                     "alt_text": HOSTILE_TEXT, "width": 10, "height": 10, "media_type": "image/jpeg"}
    out.update({
        "hostile-bylines": _base("hostile-bylines", bylines=[{"name": HOSTILE_TEXT, "role": HOSTILE_TEXT}]),
        "hostile-dateline": _base("hostile-dateline", dateline={"place": HOSTILE_TEXT, "date": date(2026, 11, 20)}),
        "hostile-terms": _base("hostile-terms", categories=[HOSTILE_TEXT, "politics"], keywords=[HOSTILE_TEXT],
                               places=[HOSTILE_TEXT]),
        "hostile-subjects": _base("hostile-subjects", subjects=[{"code": "medtop:99999999", "name": HOSTILE_TEXT},
                                                                {"code": "medtop:20000064", "name": None}]),
        "hostile-body": _base("hostile-body", body=HOSTILE_BODY + f"<p>{HOSTILE_TEXT}</p>"),
        "hostile-image": _base("hostile-image", images=[hostile_image]),
        "hostile-urls": _base("hostile-urls", canonical_url=HOSTILE_URLS[1], images=[
            {**hostile_image, "url": url, "caption": f"Picture at {url}"} for url in HOSTILE_URLS]),
        "hostile-times": _base("hostile-times", occurred_at=datetime(9999, 12, 31, tzinfo=timezone.utc),
                               embargo_until=datetime(1, 1, 1, tzinfo=timezone.utc)),
        "hostile-rtl-override": _base("hostile-rtl-override", language="ar",
                                      headline="\u202eعنوان\u202c " + HOSTILE_TEXT),
    })
    return out


def wire_corpus() -> dict[str, ArticleEvent]:
    """The corpus of the wire clients (module doc), by name: at least 60 events."""
    fixture = fixture_story()
    updated = corpus.next_version(fixture, "updated", at=fixture["occurred_at"] + timedelta(hours=1),
                                  headline=FIXTURE["headline"] + " as Ankara sends more troops")
    corrected = corpus.next_version(updated, "corrected", correction_note="An earlier version misdated the convoy.")
    killed = corpus.next_version(corrected, "killed", kill_reason="Legal: do not use.")
    second = dict(fixture_story(), article_id="tml-idlib-2020-b", event_id=corpus.new_event_id())
    withdrawn = corpus.next_version(second, "withdrawn", kill_reason="Pending verification of the photo.")
    events = {**cases(), "fixture-updated": updated, "fixture-corrected": corrected, "fixture-killed": killed,
              "fixture-b": second, "fixture-b-withdrawn": withdrawn, **hostile_fields()}
    generated = corpus.stream(30, seed=13, body_bytes=1500)
    events.update({f"generated-{i:02d}-{event['event_type']}": event for i, event in enumerate(generated)})
    return events


def assert_safe_xhtml(root: etree._Element) -> None:
    """``root`` (an XHTML element) holds no script, event handler, style or javascript: link."""
    assert etree.QName(root).namespace == XHTML, root.tag
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        assert etree.QName(node).namespace == XHTML, node.tag
        assert etree.QName(node).localname not in {"script", "style", "iframe", "svg", "img"}, node.tag
        for name, value in node.attrib.items():
            assert not etree.QName(name).localname.lower().startswith("on"), name
            assert "javascript:" not in value.lower(), value
            assert name != "style", name


def body_paragraph_texts(root: etree._Element) -> list[str]:
    """The text of each XHTML ``p`` under ``root``."""
    return ["".join(p.itertext()) for p in root.iter(f"{{{XHTML}}}p")]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
