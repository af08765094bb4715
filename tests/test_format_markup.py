"""The renderers write text (newswire.formats.markup), not lxml trees: byte for byte what the
lxml renderers they replaced make (tests/lxml_reference), on the wire corpus, generated
stories and random hostile values in every field (XML-illegal characters, ``]]>``, lone
surrogates, quotes of both kinds, markup, bidi overrides), sealed or not; and what they make
stays well-formed and valid against the NewsML-G2 XSD."""

from __future__ import annotations

import random
from datetime import date

import pytest
from lxml import etree

from newswire import corpus, seal
from newswire.formats import atom, markup, newsml, rss
from tests import lxml_reference
from tests.corpus_cases import NOW, wire_corpus
from tests.lxml_reference import atom as lxml_atom
from tests.lxml_reference import newsml as lxml_newsml
from tests.lxml_reference import rss as lxml_rss
from tests.official_schemas import newsml_schema

AUTHORITY = "news.agency.example"
#: pieces of hostile values: XML-illegal characters, CDATA's end, quotes, markup, references,
#: line and paragraph separators, a lone surrogate, bidi controls, right-to-left and astral text
PIECES = ["<", ">", "&", '"', "'", "]]>", "\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x85", "\x9b",
          "\r", "\n", "\t", "\r\n", "\u2028", "\u2029", "\ud800", "\udfff", "\ufffe", "\uffff", "\ufeff", "\ufffd",
          "\u202e", "\u200f", "<script>alert(1)</script>", "&amp;", "&#x1;", "&lt;", "<![CDATA[x]]>", "<!-- c -->",
          "javascript:alert(1)", "é", "عربي", "עברית", "😀", "a", "word", " ", "  "]
TEXT_FIELDS = ["headline", "subheadline", "slugline", "summary", "provider", "copyright_notice", "usage_terms",
               "correction_note", "content_warning", "kill_reason"]


def hostile_text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))


def hostile_event(seed: int) -> dict:
    """A generated story with a random hostile value in every text field, list and image."""
    rng = random.Random(seed)
    event = corpus.story(rng, f"hostile-{seed}", language=rng.choice(["en", "ar", "he"]), images=2)
    event.update({name: hostile_text(rng) for name in TEXT_FIELDS})
    event["headline"] = "H " + event["headline"]  # never blank: a blank headline is refused, not rendered
    event["provider"] = "P " + event["provider"]
    event["event_type"] = rng.choice(["published", "updated", "corrected", "killed", "withdrawn"])
    event["bylines"] = [{"name": "N " + hostile_text(rng), "role": hostile_text(rng)} for _ in range(2)]
    event["dateline"] = {"place": "D " + hostile_text(rng), "date": date(2026, 11, 20)}
    for key in ("categories", "keywords", "places"):
        event[key] = [hostile_text(rng) for _ in range(3)] + ["politics"]
    event["subjects"] = [{"code": "medtop:20000056", "name": hostile_text(rng)},
                         {"code": f"x{hostile_text(rng)}:y", "name": None}]
    event["body"] = "".join(f"<p title='{hostile_text(rng)}'>{hostile_text(rng)}</p>" for _ in range(3))
    event["canonical_url"] = f"https://example.org/{hostile_text(rng)}"
    for image in event["images"]:
        image.update(caption=hostile_text(rng), credit=hostile_text(rng), alt_text=hostile_text(rng),
                     url=f"https://media.example.org/{hostile_text(rng)}.jpg")
    return event


def corpus_events() -> list[dict]:
    return [*wire_corpus().values(), *corpus.stream(60, seed=23), *(hostile_event(seed) for seed in range(150))]


def _same(fast, reference) -> None:
    """``fast()`` and ``reference()`` make the same bytes, or both refuse with ValueError."""
    try:
        expected = reference()
    except ValueError:
        with pytest.raises(ValueError):
            fast()
        return
    assert fast() == expected


@pytest.mark.parametrize("name", ["newsml", "rss", "atom"])
def test_the_text_renderers_make_the_lxml_renderers_bytes(name):
    for event in corpus_events():
        for given in (event, {**event, seal.MARK: True} if event["article_id"].startswith("nw-") else event):
            if name == "newsml":
                _same(lambda: newsml.news_item_bytes(given, authority=AUTHORITY),
                      lambda: lxml_newsml.news_item_bytes(given, authority=AUTHORITY))
                _same(lambda: newsml.news_message([given], sent=NOW, transmit_id="9", authority=AUTHORITY),
                      lambda: lxml_newsml.news_message([given], sent=NOW, transmit_id="9", authority=AUTHORITY))
                _same(lambda: [etree.tostring(i) for i in newsml.picture_items(given, authority=AUTHORITY)],
                      lambda: [etree.tostring(i) for i in lxml_newsml.picture_items(given, authority=AUTHORITY)])
            elif name == "rss":
                _same(lambda: rss.item_bytes(given, authority=AUTHORITY),
                      lambda: lxml_rss.item_bytes(given, authority=AUTHORITY))
                channel = dict(title="All <&>\x01", link="https://f.example/?a=1&b=2", self_url="https://f.example/\"",
                               description="]]>", updated=NOW, authority=AUTHORITY, hub="https://hub.example/")
                _same(lambda: rss.feed([given], **channel), lambda: lxml_rss.feed([given], **channel))
            else:
                channel = dict(title="All <&>\x01", link="https://f.example/?a=1&b=2", self_url="https://f.example/\"",
                               feed_id="tag:f.example,2026:all", updated=NOW, authority=AUTHORITY)
                _same(lambda: atom.feed([given], **channel), lambda: lxml_atom.feed([given], **channel))


def test_hostile_newsml_items_are_valid_against_the_xsd():
    schema = newsml_schema()
    events = [hostile_event(seed) for seed in range(40)]
    message = etree.fromstring(newsml.news_message(events, sent=NOW, authority=AUTHORITY))
    assert len(message.find("{http://iptc.org/std/nar/2006-10-01/}itemSet")) >= len(events)
    schema.assertValid(message)
    for event in events:
        schema.assertValid(etree.fromstring(newsml.news_item_bytes(event, authority=AUTHORITY)))


def test_the_markup_helpers_escape_as_lxml_does():
    for value in ["a<b>&c\"d'e]]>f\tg\nh\ri", "plain", "", "é😀عربي", "&amp;"]:
        tree = etree.Element("e", a=value)
        tree.text = value
        assert markup.element("e", value, a=value) == etree.tostring(tree, encoding="unicode")
    assert markup.element("e") == "<e/>" and markup.element("e", None, a=None) == "<e/>"
    with pytest.raises(ValueError):  # a lone surrogate cannot reach a partner as UTF-8
        markup.document(markup.element("e", "\ud800"))


def test_the_reference_is_lxml():
    """The reference renderers build element trees (so the comparison above means something)."""
    assert isinstance(lxml_newsml.news_item(wire_corpus()["plain"]), etree._Element)
    assert lxml_reference.element.__module__ == "tests.lxml_reference"
