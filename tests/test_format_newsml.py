"""NewsML-G2 renderer: every output of the test corpus is valid against the official 2.35 XSD
and reads back with IPTC's own ``newsmlg2`` package."""

from __future__ import annotations

import pytest
from lxml import etree
import NewsMLG2

from newswire.formats import newsml, prepare
from newswire.sanitize import clean_text
from tests.corpus_cases import (
    FIXTURE, NOW, STANDARDS, XHTML, assert_safe_xhtml, body_paragraph_texts, cases, hostile,
)

SCHEMA = etree.XMLSchema(etree.parse(str(STANDARDS / "newsml-g2" / "NewsML-G2_2.35-spec-All-Power.xsd")))
N = "{http://iptc.org/std/nar/2006-10-01/}"
CASES = cases()
STATUS = {"killed": "stat:canceled", "withdrawn": "stat:withheld"}


def _valid(document: bytes) -> etree._Element:
    root = etree.fromstring(document)
    SCHEMA.assertValid(root)
    return root


def _read(document: bytes):
    return NewsMLG2.NewsMLG2Document(document).get_item()


@pytest.mark.parametrize("name", CASES)
def test_text_item_is_valid_and_reads_back_with_newsmlg2(name):
    event = CASES[name]
    document = newsml.news_item_bytes(event)
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = _valid(document)
    item = _read(document)
    assert item.guid == root.get("guid")
    assert item.version == str(event["version"])
    assert str(item.itemmeta.itemclass.qcode) == "ninat:text"
    assert item.itemmeta.pubstatus.qcode == STATUS.get(event["event_type"], "stat:usable")
    headlines = list(item.contentmeta.headline)
    assert str(headlines[0]) == clean_text(event["headline"]).strip()
    html = item.contentset.inlinexml[0]._xs_any_content[0]
    assert html.tag == f"{{{XHTML}}}html"
    assert_safe_xhtml(html)
    assert html.find(f"{{{XHTML}}}head/{{{XHTML}}}title").text == str(headlines[0])
    paragraphs = body_paragraph_texts(html)
    if event["event_type"] in STATUS:
        assert paragraphs == []
    else:  # a clean body (every case but the hostile one) passes unchanged
        expected = etree.fromstring(f"<div>{prepare(event).body if name == 'hostile' else event['body']}</div>")
        assert paragraphs == ["".join(p.itertext()) for p in expected.iter("p")]
        assert paragraphs


@pytest.mark.parametrize("name", CASES)
def test_picture_items_are_valid_and_carry_caption_credit_and_file(name):
    event = CASES[name]
    story = prepare(event)
    items = newsml.picture_items(event)
    assert len(items) == len(story.pictures)
    for element, picture in zip(items, story.pictures):
        document = etree.tostring(element, xml_declaration=True, encoding="UTF-8")
        _valid(document)
        item = _read(document)
        assert str(item.itemmeta.itemclass.qcode) == "ninat:picture"
        assert item.guid == picture.uri and item.version == str(event["version"])
        assert item.itemmeta.pubstatus.qcode == STATUS.get(event["event_type"], "stat:usable")
        remote = item.contentset.remotecontent[0]
        assert remote.href == picture.url and remote.contenttype == picture.media_type
        if picture.caption:
            assert str(item.contentmeta.description) == picture.caption
            assert item.contentmeta.description.role == "drol:caption"
        if picture.credit:
            assert str(item.contentmeta.creditline) == picture.credit


def test_news_message_with_every_case_is_valid_and_reads_back():
    events = list(CASES.values())
    document = newsml.news_message(events, sent=NOW, transmit_id="batch-0001")
    root = _valid(document)
    header = root.find(f"{N}header")
    assert header.findtext(f"{N}sent") == "2026-11-26T09:00:00Z"
    assert header.findtext(f"{N}transmitId") == "batch-0001"
    pictures = sum(len(prepare(e).pictures) for e in events)
    assert len(root.find(f"{N}itemSet")) == len(events) + pictures
    message = _read(document)
    assert str(message.header.transmitid) == "batch-0001"
    # newsmlg2 keeps itemSet's members as xs:any elements: read each as a NewsItem
    read = [NewsMLG2.NewsItem(xmlelement=element) for element in message.itemset._xs_any_content]
    assert len(read) == len(events) + pictures
    texts = [item for item in read if str(item.itemmeta.itemclass.qcode) == "ninat:text"]
    assert [item.version for item in texts] == [str(e["version"]) for e in events]
    assert [str(list(item.contentmeta.headline)[0]) for item in texts] == [prepare(e).headline for e in events]
    without = etree.fromstring(newsml.news_message(events[:2], sent=NOW, include_pictures=False))
    SCHEMA.assertValid(without)
    assert len(without.find(f"{N}itemSet")) == 2 and without.find(f"{N}header/{N}transmitId") is None


def test_versions_share_the_guid_and_carry_signals_notes_and_status():
    items = {name: _valid(newsml.news_item_bytes(CASES[name]))
             for name in ("plain", "updated", "corrected", "killed")}
    assert len({item.get("guid") for item in items.values()}) == 1
    assert [item.get("version") for item in items.values()] == ["1", "2", "3", "4"]
    assert items["plain"].find(f"{N}itemMeta/{N}signal") is None
    assert items["updated"].find(f"{N}itemMeta/{N}signal").get("qcode") == "sig:update"
    corrected = items["corrected"].find(f"{N}itemMeta")
    assert corrected.find(f"{N}signal").get("qcode") == "sig:correction"
    assert "misspelled the minister's name" in corrected.findtext(f"{N}edNote")
    killed = items["killed"].find(f"{N}itemMeta")
    assert killed.find(f"{N}pubStatus").get("qcode") == "stat:canceled"
    assert "Legal" in killed.findtext(f"{N}edNote")
    withdrawn = _valid(newsml.news_item_bytes(CASES["withdrawn"])).find(f"{N}itemMeta")
    assert withdrawn.find(f"{N}pubStatus").get("qcode") == "stat:withheld"
    assert "Pending verification" in withdrawn.findtext(f"{N}edNote")


def test_picture_items_share_status_embargo_and_warning_but_not_text_signals():
    def meta(name):
        return newsml.picture_items(CASES[name])[0].find(f"{N}itemMeta")

    corrected = meta("corrected")
    assert corrected.find(f"{N}signal") is None and corrected.find(f"{N}edNote") is None
    killed = meta("killed")
    assert killed.find(f"{N}pubStatus").get("qcode") == "stat:canceled" and "Legal" in killed.findtext(f"{N}edNote")
    assert meta("embargoed").findtext(f"{N}embargoed") == "2026-11-26T11:00:00Z"
    warned = meta("content_warning")
    assert warned.find(f"{N}signal").get("qcode") == "sig:cwarn"
    assert warned.findtext(f"{N}edNote") == "Content warning: graphic descriptions of violence"


def test_embargo_and_content_warning_are_in_item_meta():
    meta = _valid(newsml.news_item_bytes(CASES["embargoed"])).find(f"{N}itemMeta")
    assert meta.findtext(f"{N}embargoed") == "2026-11-26T11:00:00Z"
    assert _valid(newsml.news_item_bytes(CASES["plain"])).find(f"{N}itemMeta/{N}embargoed") is None
    meta = _valid(newsml.news_item_bytes(CASES["content_warning"])).find(f"{N}itemMeta")
    assert meta.find(f"{N}signal").get("qcode") == "sig:cwarn"
    assert meta.findtext(f"{N}edNote") == "Content warning: graphic descriptions of violence"


def test_subheadline_role_and_creator_roles_resolve_in_the_inline_catalog():
    document = newsml.news_item_bytes(CASES["fixture"])
    root = _valid(document)
    sub = root.find(f"{N}contentMeta/{N}headline[@role]")
    assert sub.text == FIXTURE["subheadline"] and sub.get("role") == "nwhrol:subheadline"
    _read(document)  # newsmlg2 loads the item's catalogs into its store
    for qcode in ("nwhrol:subheadline", "stat:usable", "medtop:16000000", "irel:seeAlso", "drol:summary"):
        scheme = NewsMLG2.get_catalogs().get_scheme_for_alias(qcode.split(":")[0])
        assert scheme.uri
    roles = [c.get("role") for c in _valid(newsml.news_item_bytes(CASES["arabic"])).iter(f"{N}creator")]
    assert roles and all(r.startswith("nwcrol:") and " " not in r for r in roles)


def test_subjects_are_media_topics_and_unknown_categories_stay_keywords():
    root = _valid(newsml.news_item_bytes(CASES["fixture"]))
    codes = [s.get("qcode") for s in root.iter(f"{N}subject") if s.get("qcode")]
    assert [c for c in codes if c.startswith("medtop:")] == [
        "medtop:20000056", "medtop:20000073", "medtop:20000639", "medtop:20000645", "medtop:16000000",
        "medtop:20000638"]  # the editor's, then the categories'; each followed by its Subject Code
    root = _valid(newsml.news_item_bytes(hostile()))
    assert "unknown-cat" in [k.text for k in root.iter(f"{N}keyword")]
    assert "medtop:11000000" in [s.get("qcode") for s in root.iter(f"{N}subject")]


def test_rtl_story_has_rtl_body_and_its_names():
    root = _valid(newsml.news_item_bytes(CASES["arabic"]))
    html = root.find(f"{N}contentSet/{N}inlineXML/{{{XHTML}}}html")
    assert html.get("dir") == "rtl" and html.get("lang") == "ar"
    assert root.findtext(f"{N}contentMeta/{N}creator/{N}name") == "سارة العلي"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "ar"
    english = _valid(newsml.news_item_bytes(CASES["plain"]))
    assert english.find(f"{N}contentSet/{N}inlineXML/{{{XHTML}}}html").get("dir") is None


def test_picture_links_and_guids_are_stable_per_article_and_image():
    event = CASES["pictures"]
    root = _valid(newsml.news_item_bytes(event))
    links = [link.get("residref") for link in root.iter(f"{N}link")]
    guids = [item.get("guid") for item in newsml.picture_items(event)]
    assert links == guids and len(set(guids)) == 3
    again = [item.get("guid") for item in newsml.picture_items(CASES["pictures"])]
    updated = dict(event, version=2, images=[dict(event["images"][0], url="https://media.example.org/new.jpg"),
                                             *event["images"][1:]])
    changed = [item.get("guid") for item in newsml.picture_items(updated)]
    assert again == guids and changed[1:] == guids[1:] and changed[0] != guids[0]


def test_hostile_event_renders_valid_and_safe():
    document = newsml.news_message([hostile()], sent=NOW)
    root = _valid(document)
    for element in root.iter():
        if isinstance(element.tag, str):
            assert etree.QName(element).localname != "script"
            assert all("javascript:" not in v for v in element.attrib.values())
    html = root.find(f".//{N}inlineXML/{{{XHTML}}}html")
    assert_safe_xhtml(html)
    assert body_paragraph_texts(html) == ["First paragraph survives.", "Second paragraph survives."]
    headline = root.findtext(f".//{N}contentMeta/{N}headline")
    assert headline == "Breaking news <script>alert(1)</script> & more"
    pictures = root.findall(f"{N}itemSet/{N}newsItem/{N}itemMeta/{N}itemClass[@qcode='ninat:picture']")
    assert len(pictures) == 1  # the javascript: image is left out
    assert b"\x00" not in document and b"\x07" not in document and "\u202e".encode() not in document


def test_fixture_story_carries_every_paragraph_and_the_image():
    event = CASES["fixture"]
    root = _valid(newsml.news_item_bytes(event))
    html = root.find(f"{N}contentSet/{N}inlineXML/{{{XHTML}}}html")
    assert body_paragraph_texts(html) == FIXTURE["body_paragraphs"]
    assert root.findtext(f"{N}contentMeta/{N}headline") == FIXTURE["headline"]
    picture = newsml.picture_items(event)[0]
    SCHEMA.assertValid(picture)
    assert picture.findtext(f"{N}contentMeta/{N}description") == FIXTURE["image"]["caption"]
    assert picture.findtext(f"{N}contentMeta/{N}creditline") == FIXTURE["image"]["credit"]
    text = etree.tostring(root, encoding="unicode")
    assert not [phrase for phrase in FIXTURE["furniture_phrases_never_in_output"] if phrase in text]


@pytest.mark.parametrize(("change", "field"), [
    ({"headline": " \x00 "}, "headline"),
    ({"article_id": ""}, "article_id"),
    ({"version": 0}, "version"),
    ({"language": "not a tag"}, "language"),
    ({"occurred_at": NOW.replace(tzinfo=None)}, "occurred_at"),
    ({"provider": ""}, "provider"),
])
def test_what_cannot_be_rendered_raises_value_error_naming_the_field(change, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        newsml.news_item_bytes(dict(CASES["plain"], **change))
