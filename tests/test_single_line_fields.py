"""Single-line fields: a tab, line break or other whitespace control in any of them is cleaned
(to one space; vertical tab and form feed, illegal in XML, are removed) by the producer and
again by the renderers, so the NewsML-G2 item and every
newsMessage holding it stay valid against the official XSD (which types those fields
``[\\S ]*``), and the ninjs item against its schema.

Pure: the producer's build_event and the renderers, called directly.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from lxml import etree

from newswire.config import Settings
from newswire.formats import newsml, ninjs, rss
from newswire.producers.article import SINGLE_LINE, build_event
from tests.corpus_cases import NOW, cases
from tests.official_schemas import newsml_schema, ninjs_validator
from tests.test_article_validation import good

#: tab, CR, LF, vertical tab, form feed, LINE SEPARATOR, NEL
BREAKERS = {"tab": "\t", "cr": "\r", "lf": "\n", "vt": "\x0b", "ff": "\x0c", "ls": "\u2028", "nel": "\x85"}
CLEAN = "Alpha Beta Gamma"
#: vertical tab and form feed are C0 controls, removed like every character illegal in XML 1.0
REMOVED = {"\x0b", "\x0c"}
_CASES = cases()  # once: the corpus builds a 1 MB body
PLAIN, FIXTURE, PICTURES = _CASES["plain"], _CASES["fixture"], _CASES["pictures"]
#: an occurrence of the value in an output, whatever follows "Alpha"
_ALPHA = re.compile(r"Alpha.{0,14}", re.DOTALL)


def dirty(ch: str) -> str:
    return f"{ch}Alpha{ch}Beta{ch}{ch} Gamma{ch}"


def cleaned(ch: str) -> str:
    return "AlphaBeta Gamma" if ch in REMOVED else CLEAN


def put(target: dict, path: str, value: str) -> None:
    """Set the field ``path`` (a SINGLE_LINE path: ``a``, ``a.b``, ``a[]``, ``a[].b``) of ``target``."""
    if path.endswith("[]"):
        target[path[:-2]] = [value]
        return
    head, _, leaf = path.partition(".")
    if not leaf:
        target[head] = value
    elif head.endswith("[]"):
        name = head[:-2]
        first = dict((target.get(name) or [{"code": "medtop:11000000"}])[0])
        target[name] = [{**first, leaf: value}]
    else:
        target[head] = {**(target.get(head) or {}), leaf: value}


def get(target: dict, path: str) -> str:
    if path.endswith("[]"):
        return target[path[:-2]][0]
    head, _, leaf = path.partition(".")
    if not leaf:
        return target[head]
    return target[head[:-2]][0][leaf] if head.endswith("[]") else target[head][leaf]


def assert_renders_valid_and_clean(event: dict, clean: str) -> None:
    """The item, its pictures and a newsMessage with it validate; ninjs too; the value is clean
    wherever it appears, and appears in at least one format."""
    schema = newsml_schema()
    item = newsml.news_item_bytes(event)
    schema.assertValid(etree.fromstring(item))
    for picture in newsml.picture_items(event):
        schema.assertValid(picture)
    message = newsml.news_message([PLAIN, event, FIXTURE], sent=NOW, transmit_id="t-1")
    schema.assertValid(etree.fromstring(message))
    obj = ninjs.item(event)
    ninjs_validator().validate(obj)
    # ensure_ascii: a LINE SEPARATOR or NEL left in would show as \u2028 / \x85 after "Alpha"
    outputs = [message.decode(), json.dumps(obj), rss.item_bytes(event).decode()]
    found = [m.group() for text in outputs for m in _ALPHA.finditer(text)]
    assert all(f.startswith(clean) for f in found), found
    assert found, "the value appears in no output"


@pytest.mark.parametrize("ch", BREAKERS.values(), ids=BREAKERS.keys())
@pytest.mark.parametrize("path", SINGLE_LINE)
def test_producer_cleans_single_line_field(path, ch):
    document = copy.deepcopy(good())
    put(document, path, dirty(ch))
    event = build_event(document, Settings(provider="The Media Line"))
    assert get(event, path) == cleaned(ch)
    assert_renders_valid_and_clean(event, cleaned(ch))


@pytest.mark.parametrize("ch", BREAKERS.values(), ids=BREAKERS.keys())
@pytest.mark.parametrize("path", SINGLE_LINE)
def test_event_that_bypassed_the_producer_renders_valid(path, ch):
    event = copy.deepcopy(PICTURES)
    put(event, path, dirty(ch))
    assert get(event, path) == dirty(ch)
    assert_renders_valid_and_clean(event, cleaned(ch))


def test_multi_line_fields_keep_their_line_breaks():
    document = dict(good(), summary="First line.\nSecond line.")
    document["images"][0]["caption"] = "A convoy.\n\tSarmada."
    event = build_event(document, Settings(provider="The Media Line"))
    assert event["summary"] == "First line.\nSecond line."
    assert event["images"][0]["caption"] == "A convoy.\n\tSarmada."
    newsml_schema().assertValid(etree.fromstring(newsml.news_message([event], sent=NOW)))


def test_typographic_spaces_are_kept():
    document = dict(good(), headline="10\u00a0km  north\u2009of Idlib")
    assert build_event(document, Settings(provider="The Media Line"))["headline"] == "10\u00a0km north\u2009of Idlib"
