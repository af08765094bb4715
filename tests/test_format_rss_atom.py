"""RSS 2.0 and Atom 1.0 renderers: feedparser reads every feed of the test corpus without
complaint (``bozo == 0``) and finds each field where it belongs (updates, tombstones, enclosures
and captions over the larger wire corpus: tests/test_wire_clients.py)."""

from __future__ import annotations

import pytest
from lxml import etree

from newswire.formats import is_embargoed, prepare, rss
from tests.corpus_cases import FIXTURE, NOW, XHTML, assert_safe_xhtml, body_paragraph_texts, cases, hostile
from tests.feed_reading import atom_feed, read, rss_feed

CASES = cases()
LIVE = [name for name, event in CASES.items() if event["event_type"] not in ("killed", "withdrawn")]
DEAD = ["killed", "withdrawn"]


@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_whole_corpus_feed_parses_cleanly_with_kills_and_withdrawals_as_notices(render):
    parsed = read(render(list(CASES.values())))
    assert parsed.version == ("rss20" if render is rss_feed else "atom10")
    assert parsed.feed.title == "All stories"
    shown = CASES if render is rss_feed else LIVE  # RSS: the kill's notice as an item; Atom: a tombstone
    assert [e.id for e in parsed.entries] == [prepare(CASES[name]).uri for name in shown]
    assert parsed.feed.updated_parsed[:5] == (2026, 11, 26, 9, 0)
    self_links = [link.href for link in parsed.feed.links if link.rel == "self"]
    assert self_links == [f"https://feeds.example.org/feeds/all.{'rss' if render is rss_feed else 'atom'}"]


@pytest.mark.parametrize("name", LIVE)
@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_fields_map_for_every_case(render, name):
    event = CASES[name]
    story = prepare(event)
    (entry,) = read(render([event])).entries
    assert entry.title == (rss.plain(story.headline) if render is rss_feed else story.headline)
    assert entry.id == story.uri
    alternates = [link.href for link in entry.get("links", []) if link.rel == "alternate"]
    assert alternates == ([story.canonical_url] if story.canonical_url else [])
    authors = [a.get("name") for a in entry.get("authors", [])]
    assert authors == ([p.name for p in story.people] or ([story.provider] if render is atom_feed else []))
    assert entry.published_parsed[:5] == story.first_created.timetuple()[:5]
    content = entry.content[0].value
    body = etree.fromstring(f'<div xmlns="{XHTML}">{content}</div>')
    assert_safe_xhtml(body)
    expected = etree.fromstring(f'<div>{story.body}</div>')
    assert body_paragraph_texts(body) == ["".join(p.itertext()) for p in expected.iter("p")]
    if render is rss_feed:
        assert [m["url"] for m in entry.get("media_content", [])] == [p.url for p in story.pictures]
        credits = [c["content"] for c in entry.get("media_credit", [])]
        assert credits == [p.credit for p in story.pictures if p.credit]
    else:
        enclosures = [link.href for link in entry.get("links", []) if link.rel == "enclosure"]
        assert enclosures == [p.url for p in story.pictures]


def test_rss_media_caption_credit_and_dimensions_of_the_fixture():
    (entry,) = read(rss_feed([CASES["fixture"]])).entries
    assert entry.media_content == [{"url": "https://themedialine.org/wp-content/uploads/2020/02/sarmada.jpg",
                                    "type": "image/jpeg", "medium": "image", "width": "1200", "height": "800"}]
    assert entry.media_credit[0]["content"] == FIXTURE["image"]["credit"]
    document = etree.fromstring(rss_feed([CASES["fixture"]]))
    caption = document.findtext(".//{http://search.yahoo.com/mrss/}description")
    assert caption == FIXTURE["image"]["caption"]
    assert document.find(".//guid").get("isPermaLink") == "false"
    assert entry.guidislink is False
    assert document.findtext(".//pubDate") == "Tue, 18 Feb 2020 12:00:00 GMT"


@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_fixture_story_every_paragraph_and_headline(render):
    (entry,) = read(render([CASES["fixture"]])).entries
    assert entry.title == FIXTURE["headline"]
    body = etree.fromstring(f'<div xmlns="{XHTML}">{entry.content[0].value}</div>')
    assert body_paragraph_texts(body) == FIXTURE["body_paragraphs"]
    assert FIXTURE["subheadline"] in entry.summary


@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_correction_note_leads_the_summary_and_updates_keep_the_id(render):
    entries = read(render([CASES["plain"], CASES["updated"], CASES["corrected"]])).entries
    assert len({e.id for e in entries}) == 1
    assert entries[2].summary.startswith("Correction: An earlier version misspelled the minister's name.")
    assert not entries[0].summary.startswith("Correction")


def test_atom_entry_updated_published_categories_and_rtl_content():
    (entry,) = read(atom_feed([CASES["updated"]])).entries
    assert entry.updated_parsed[:5] == (2026, 11, 20, 10, 5) and entry.published_parsed[:5] == (2026, 11, 20, 10, 0)
    fixture = etree.fromstring(atom_feed([CASES["fixture"]]))
    terms = [(c.get("term"), c.get("scheme")) for c in fixture.iter("{http://www.w3.org/2005/Atom}category")]
    assert ("medtop:16000000", "http://cv.iptc.org/newscodes/mediatopic/") in terms and ("conflict", None) in terms
    arabic = etree.fromstring(atom_feed([CASES["arabic"]]))
    div = arabic.find(".//{http://www.w3.org/2005/Atom}content/{%s}div" % XHTML)
    assert div.get("dir") == "rtl"
    assert read(atom_feed([CASES["arabic"]])).entries[0].author == "سارة العلي"


@pytest.mark.parametrize("name", DEAD)
def test_rss_item_payload_of_a_kill_or_withdrawal_says_so(name):
    document = rss.item_bytes(CASES[name])
    item = etree.fromstring(document)
    assert item.tag == "item" and item.findtext("guid") == prepare(CASES[name]).uri
    assert item.findtext("description").startswith("Kill: " if name == "killed" else "Withdrawn: ")
    assert item.find("{http://purl.org/rss/1.0/modules/content/}encoded") is None


def test_rss_item_bytes_is_a_standalone_item_with_its_namespaces():
    document = rss.item_bytes(CASES["fixture"])
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<item ")
    item = etree.fromstring(document)
    assert item.findtext("{http://purl.org/dc/elements/1.1/}language") == "en"
    wrapped = b'<rss version="2.0"><channel><title>t</title><link>https://x.example/</link>' \
              b'<description>d</description>' + document.split(b"?>", 1)[1] + b"</channel></rss>"
    assert read(wrapped).entries[0].media_credit[0]["content"] == FIXTURE["image"]["credit"]


@pytest.mark.parametrize("render", [rss_feed, atom_feed], ids=["rss", "atom"])
def test_hostile_event_renders_parseable_and_safe(render):
    document = render([hostile()])
    (entry,) = read(document).entries
    # RSS readers take a title as HTML: what looks like a tag is left out (Atom's is type="text")
    assert entry.title == ("Breaking news alert(1) & more" if render is rss_feed
                           else "Breaking news <script>alert(1)</script> & more")
    root = etree.fromstring(document)
    for element in root.iter():
        assert all("javascript:" not in value for value in element.attrib.values())
        assert "javascript:" not in (element.text or "")
    assert "onclick" not in entry.content[0].value and "<script" not in entry.content[0].value


def test_is_embargoed():
    event = CASES["embargoed"]
    assert is_embargoed(event, NOW)
    assert not is_embargoed(event, event["embargo_until"])
    assert not is_embargoed(CASES["plain"], NOW)
