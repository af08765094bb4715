"""The wire corpus (tests/corpus_cases.py ``wire_corpus``: 70 events) through clients nobody here
wrote: the NewsML-G2 2.35 XSD and IPTC's ``newsmlg2``, Superdesk's own ingest parsers
(superdesk-core 2.5.3, tests/superdesk_parsers.py), the ninjs 2.2 and 3.1 schemas, feedparser.

What a Superdesk newsroom ends up with is pinned here (and in docs/feeds.md, "Superdesk"), so
that a partner can be told: from NewsML-G2 :data:`SUPERDESK_NEWSML_KEEPS`; from ninjs nothing
usable (:func:`test_superdesk_ninjs_parser_reads_ninjs_1_names_only`).
"""

from __future__ import annotations

import re

import NewsMLG2
import pytest
from lxml import etree

from newswire import mediatopics
from newswire.formats import atom, newsml, ninjs, ninjs2, prepare
from tests.corpus_cases import FIXTURE, FIXTURE_TOPICS, NOW, XHTML, wire_corpus
from tests.feed_reading import atom_feed, read, rss_feed
from tests.official_schemas import newsml_schema, ninjs_validator
from tests.superdesk_parsers import parse_newsml, parse_ninjs

CORPUS = wire_corpus()
NAMES = list(CORPUS)
N = "{http://iptc.org/std/nar/2006-10-01/}"
SUPERDESK_STATUS = {"killed": "canceled", "withdrawn": "withheld"}
#: the fields of a text item that Superdesk's NewsMLTwoFeedParser fills from newswire's NewsML-G2
SUPERDESK_NEWSML_KEEPS = {
    "guid", "uri", "version", "type", "versioncreated", "firstcreated", "pubstatus", "ednote", "signal",
    "embargoed", "urgency", "slugline", "headline", "byline", "language", "subject", "genre", "authors",
    "usageterms", "renditions", "body_html", "priority",
}


def test_corpus_has_every_kind_of_event():
    types = [event["event_type"] for event in CORPUS.values()]
    assert len(CORPUS) >= 60
    assert {"published", "updated", "corrected", "killed", "withdrawn"} <= set(types)
    assert any(e["embargo_until"] for e in CORPUS.values())
    assert any(e["language"] in ("ar", "he") for e in CORPUS.values())
    assert max(len(e["images"]) for e in CORPUS.values()) >= 25
    assert sum(name.startswith("hostile-") for name in NAMES) >= 15


# --- NewsML-G2: the XSD and newsmlg2 -------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_every_item_validates_and_reads_back_with_newsmlg2(name):
    event = CORPUS[name]
    document = newsml.news_item_bytes(event)
    newsml_schema().assertValid(etree.fromstring(document))
    item = NewsMLG2.NewsMLG2Document(document).get_item()
    story = prepare(event)
    assert item.guid == story.uri and item.version == str(event["version"])
    assert str(list(item.contentmeta.headline)[0]) == story.headline
    for picture in newsml.picture_items(event):
        newsml_schema().assertValid(picture)


def test_the_news_message_of_the_whole_corpus_validates_and_reads_back():
    document = newsml.news_message(list(CORPUS.values()), sent=NOW, transmit_id="corpus")
    newsml_schema().assertValid(etree.fromstring(document))
    message = NewsMLG2.NewsMLG2Document(document).get_item()
    items = [NewsMLG2.NewsItem(xmlelement=element) for element in message.itemset._xs_any_content]
    assert len(items) == len(CORPUS) + sum(len(prepare(e).pictures) for e in CORPUS.values())


def test_each_media_topic_is_followed_by_its_subject_code():
    root = etree.fromstring(newsml.news_item_bytes(CORPUS["fixture"]))
    codes = [s.get("qcode") for s in root.iter(f"{N}subject") if s.get("qcode")]
    expected = []
    for topic in [t["code"] for t in FIXTURE_TOPICS] + ["medtop:16000000", "medtop:20000638"]:
        expected += [topic, mediatopics.subject_code(topic).subject_code]
    assert codes == list(dict.fromkeys(expected))
    assert codes[:2] == ["medtop:20000056", "subj:16002000"]  # armed conflict, IPTC's exactMatch


# --- Superdesk's NewsML-G2 parser ----------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_superdesk_newsml_parser_takes_every_item_and_keeps_what_a_newsroom_needs(name):
    event = CORPUS[name]
    story = prepare(event)
    text, *pictures = parse_newsml(newsml.news_message([event], sent=NOW))
    assert text["guid"] == f"{story.uri}:{event['version']}" and text["version"] == str(event["version"])
    assert text["type"] == "text" and text["pubstatus"] == SUPERDESK_STATUS.get(event["event_type"], "usable")
    assert text["headline"] == story.headline
    assert text.get("byline") == story.byline
    assert text.get("embargoed") == story.embargo_until
    assert set(text) <= SUPERDESK_NEWSML_KEEPS
    subject_codes = [s.code.removeprefix("subj:") for s in story.subjects if s.code.startswith("subj:")]
    assert [s["qcode"] for s in text["subject"]] == subject_codes  # Media Topics: dropped; Subject Codes: kept
    if story.live:
        paragraphs = re.findall(r"<p>(.*?)</p>", text["body_html"], re.DOTALL)
        assert paragraphs and len(paragraphs) == len(etree.fromstring(f"<div>{story.body}</div>").findall("p"))
    else:  # the kill: status and its notice, which Superdesk keeps as the (first) edNote
        assert text["ednote"] == story.notice and not text.get("body_html")
    assert [p.get("description_text") for p in pictures] == [p.caption for p in story.pictures]
    assert [p["renditions"]["highRes"]["href"] for p in pictures] == [p.url for p in story.pictures]


def test_superdesk_names_the_fixture_subjects_and_what_it_loses():
    """The fixture's Subject Codes arrive named from Superdesk's own list; it keeps only the first
    edNote, no places, no dateline or located, and its generic parser ignores creditline."""
    event = CORPUS["fixture-corrected"]
    warned = dict(event, content_warning="graphic images")
    text, picture = parse_newsml(newsml.news_message([warned], sent=NOW))
    names = {s["qcode"]: s["name"] for s in text["subject"]}
    assert names["16002000"] == "armed conflict" and names["11011000"] == "refugee"
    story = prepare(warned)
    assert len(story.ed_notes) == 2 and text["ednote"] == story.ed_notes[0]
    assert "place" not in text and "dateline" not in text and "located" not in text
    assert FIXTURE["image"]["credit"] not in str(picture) and "creditline" not in str(picture)
    assert {s["qcode"] for s in text["signal"]} == {"sig:correction", "sig:cwarn"}


# --- ninjs 2.2 and 3.1 ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("module, version", [(ninjs, "3.1"), (ninjs2, "2.2")], ids=["ninjs3.1", "ninjs2.2"])
def test_every_item_is_valid_ninjs(module, version, name):
    obj = module.item(CORPUS[name])
    assert [e.message for e in ninjs_validator(version).iter_errors(obj)] == []
    assert obj["standard"]["version"] == version


def test_ninjs_2_2_is_the_3_1_object_in_2_2_spelling():
    event = CORPUS["fixture-corrected"]
    new, old = ninjs.item(event), ninjs2.item(event)
    assert old["pubstatus"] == new["pubStatus"] and old["versioncreated"] == new["versionCreated"]
    assert old["bodies"][0]["contenttype"] == "application/xhtml+xml" and old["ednote"] == new["edNote"]
    assert old["associations"][0]["descriptions"][0]["value"] == FIXTURE["image"]["caption"]
    assert "rel" not in old["associations"][0] and ninjs2.item(CORPUS["embargoed"])["embargoed"]


def test_rtl_ninjs_body_says_its_direction():
    for module in (ninjs, ninjs2):
        body = module.item(CORPUS["arabic"])["bodies"][0]["value"]
        assert body.startswith('<div dir="rtl">')
        assert not module.item(CORPUS["plain"])["bodies"][0]["value"].startswith("<div")


def test_superdesk_ninjs_parser_reads_ninjs_1_names_only():
    """Superdesk 2.5's NINJSFeedParser reads Superdesk's own ninjs 1.x names (``headline``,
    ``body_html``, ``subject``, associations as an object): on ninjs 2.2 or 3.1 with pictures
    (associations and renditions are arrays in both) it raises; without, it keeps the id, status,
    embargo and a few metadata, but no headline, byline, body or subjects. NewsML-G2 is the
    format for a Superdesk newsroom."""
    for module in (ninjs, ninjs2):
        with pytest.raises(AttributeError):
            parse_ninjs(module.dumps(module.item(CORPUS["fixture"])))
    (item,) = parse_ninjs(ninjs.dumps(ninjs2.item(CORPUS["embargoed"] | {"images": [], "canonical_url": None})))
    story = prepare(CORPUS["embargoed"])
    assert item["pubstatus"] == "usable" and item["embargoed"] == story.embargo_until
    assert item["guid"] == "urn::" + story.uri.removeprefix("urn:")  # Superdesk's tag of a URN
    assert not {"headline", "byline", "body_html", "subject", "version"} & set(item)
    (killed,) = parse_ninjs(ninjs.dumps(ninjs2.item(CORPUS["killed"] | {"images": [], "canonical_url": None})))
    assert killed["pubstatus"] == "canceled" and killed["ednote"].startswith("Kill: ")


# --- feed readers: feedparser --------------------------------------------------------------------

@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_the_whole_corpus_parses_cleanly_with_no_c1_control_or_replacement_character(render):
    document = render(list(CORPUS.values()))
    read(document)
    assert not re.search("[\x80-\x9f\ufffd]", document.decode())


@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_readers_see_an_update_as_the_same_item_with_a_later_updated_time(render):
    v1, v2 = read(render([CORPUS["fixture"]])).entries[0], read(render([CORPUS["fixture-updated"]])).entries[0]
    assert v1.id == v2.id
    assert v2.updated_parsed > v1.updated_parsed and v2.title != v1.title
    assert v1.published_parsed == v2.published_parsed


def test_rss_kill_and_withdrawal_are_notices_on_the_same_guid():
    live, killed, withdrawn = read(rss_feed([CORPUS["fixture"], CORPUS["fixture-killed"],
                                           CORPUS["fixture-b-withdrawn"]])).entries
    assert killed.id == live.id and killed.title == f"Killed: {FIXTURE['headline']} as Ankara sends more troops"
    assert killed.summary == "Kill: Legal: do not use." and "content" not in killed and "link" not in killed
    assert not killed.get("enclosures") and not killed.get("media_content")
    assert withdrawn.title.startswith("Withdrawn: ") and withdrawn.updated_parsed


def test_atom_kill_is_an_rfc_6721_tombstone():
    document = atom_feed([CORPUS["plain"], CORPUS["fixture-killed"], CORPUS["fixture-b-withdrawn"]])
    parsed = read(document)
    assert [e.id for e in parsed.entries] == [prepare(CORPUS["plain"]).uri]
    assert "at_deleted-entry" in parsed.feed  # feedparser sees the tombstone (it keeps no attributes)
    tombstones = etree.fromstring(document).findall(f"{{{atom.TOMBSTONES}}}deleted-entry")
    assert [(t.get("ref"), t.get("when")) for t in tombstones] == [
        (prepare(CORPUS["fixture-killed"]).uri, "2020-02-18T13:10:00Z"),
        (prepare(CORPUS["fixture-b-withdrawn"]).uri, "2020-02-18T12:05:00Z")]
    assert [t.findtext(f"{{{atom.TOMBSTONES}}}comment") for t in tombstones] == [
        "Kill: Legal: do not use.", "Withdrawn: Pending verification of the photo."]


def test_rss_enclosure_captions_language_and_order():
    document = rss_feed([CORPUS["fixture"]])
    (entry,) = read(document).entries
    assert entry.enclosures == [{"href": "https://themedialine.org/wp-content/uploads/2020/02/sarmada.jpg",
                                 "length": "0", "type": "image/jpeg"}]
    channel = etree.fromstring(document).find("channel")
    assert channel.findtext("language") == "en"
    caption = channel.find("item/{http://search.yahoo.com/mrss/}content/{http://search.yahoo.com/mrss/}description")
    assert caption.text == FIXTURE["image"]["caption"] and caption.get("type") == "plain"
    tags = [etree.QName(child).localname for child in channel.find("item")]
    assert tags.index("description") < tags.index("encoded")
    (many,) = read(rss_feed([CORPUS["many_images"]])).entries
    assert len(many.enclosures) == 1 and len(many.media_content) == 25


def test_rss_titles_and_captions_hold_no_markup_and_rtl_bodies_say_their_direction():
    item = etree.fromstring(rss_feed([CORPUS["hostile-image"] | {"headline": "<b>Bold</b> claim <!-- x --> here"}]))
    assert item.findtext("channel/item/title") == "Bold claim here"
    caption = item.findtext(".//{http://search.yahoo.com/mrss/}description")
    assert "<" not in caption and "bold" in caption
    (arabic,) = read(rss_feed([CORPUS["arabic"]])).entries
    assert arabic.content[0].value.startswith('<div dir="rtl">')
    assert etree.fromstring(rss_feed([CORPUS["arabic"]])).findtext("channel/language") == "ar"


@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_ipv6_literal_urls_reach_the_reader_as_they_are(render):
    (entry,) = read(render([CORPUS["hostile-urls"]])).entries
    urls = [e["href"] for e in entry.get("enclosures", [])] + [m["url"] for m in entry.get("media_content", [])]
    assert "http://[2606:4700::1111]/ipv6.jpg" in urls
    assert entry.link == "http://[2606:4700::1111]/ipv6.jpg" if render is atom_feed else True
    assert not any("javascript:" in url or " " in url or url == "http://[::1/" for url in urls)
