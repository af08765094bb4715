"""An article page with its site's furniture → the clean story → Kafka → read back, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newswire.config import Settings
from newswire.producers.article import build_event
from newswire.producers.html_page import PageError, article_from_html, article_id_from_url
from newswire.producers.publish import publish
from newswire.sanitize import word_count
from tests.topic_reader import read_events

PAGE = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "tml-idlib-page.html"
EXPECTED = json.loads((Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "tml-idlib-expected.json")
                      .read_text(encoding="utf-8"))
#: the settings of an installation that names its agency: pages without a site name are its stories
AGENCY = Settings(provider="Test Agency")


@pytest.fixture(scope="module")
def event() -> dict:
    return build_event(article_from_html(PAGE.read_bytes()), Settings())


def test_every_expected_part_survives(event: dict) -> None:
    assert event["headline"] == EXPECTED["headline"]
    assert event["subheadline"] == EXPECTED["subheadline"]
    assert event["provider"] == EXPECTED["provider"]
    (image,) = event["images"]
    assert image["caption"] == EXPECTED["image"]["caption"]
    assert image["credit"] == EXPECTED["image"]["credit"]
    assert image["url"].startswith("https://themedialine.org/") and (image["width"], image["height"]) == (1024, 683)
    paragraphs = [f"<p>{p}</p>" for p in EXPECTED["body_paragraphs"]]
    assert event["body"] == "".join(paragraphs)  # every paragraph verbatim, in order, and nothing else
    assert event["word_count"] == word_count(event["body"])


def test_no_furniture_phrase_anywhere_in_the_event(event: dict) -> None:
    everything = json.dumps(event, default=str, ensure_ascii=False)
    for phrase in EXPECTED["furniture_phrases_never_in_output"]:
        assert phrase not in everything
    assert "Thank you for confidence" not in everything and "Donate" not in everything


def test_page_metadata(event: dict) -> None:
    assert event["article_id"] == "themedialine.org:turkey-continues-talks-with-russia-on-idlib-fighting"
    assert event["canonical_url"] == ("https://themedialine.org/top-stories/"
                                      "turkey-continues-talks-with-russia-on-idlib-fighting/")
    assert event["language"] == "en-US"
    assert event["first_created"].isoformat() == "2020-02-18T15:47:12+00:00"
    assert event["occurred_at"].isoformat() == "2020-02-18T16:02:40+00:00"
    assert event["keywords"][:3] == ["Idlib", "Russia", "Turkey"]


def test_article_id_given_wins_and_pages_without_canonical_need_one() -> None:
    page = b"<html lang='he'><body><article><h1>\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d</h1><p>text here</p></article></body></html>"
    with pytest.raises(PageError):
        article_from_html(page)
    document = article_from_html(page, article_id="tml-he-1")
    assert (document["article_id"], document["headline"], document["language"]) == ("tml-he-1", "שלום", "he")


def test_long_urls_give_bounded_unique_ids() -> None:
    a = article_id_from_url("https://example.org/news/" + "x" * 300)
    b = article_id_from_url("https://example.org/news/" + "x" * 299 + "y")
    assert len(a) == len(b) == 128 and a != b


def test_fixture_page_published_and_read_back_equal(settings: Settings, event: dict) -> None:
    (published,) = publish(settings, [event])
    ((read, record),) = read_events(settings)
    assert read == event
    assert (record.partition, record.offset) == (published.partition, published.offset)
    assert record.key == event["article_id"].encode()
    assert dict(record.headers)["event_type"] == b"published"


def test_page_bytes_are_decoded_by_declared_charset_else_strict_utf8() -> None:
    arabic = "<html lang='ar'><head><meta charset='windows-1256'></head><body><article><h1>سلام</h1><p>نص</p>" \
             "</article></body></html>"
    assert article_from_html(arabic.encode("cp1256"), article_id="a1")["headline"] == "سلام"
    with pytest.raises(PageError, match="not valid utf-8: byte 0xe9 at offset"):
        article_from_html("<html><body><h1>Fr\u00e9d</h1></body></html>".encode("latin-1"), article_id="a2")


def test_other_page_shapes_credit_element_dek_and_furniture() -> None:
    page = """<!DOCTYPE html><html lang="ar"><head><meta charset="utf-8">
    <meta property="og:title" content="عنوان من og">
    <link rel="canonical" href="https://news.example.org/ar/2026/11/talks-resume?id=7"></head><body>
    <div class="cookie-consent">We use cookies. Accept all?</div>
    <article><h1>استئناف المحادثات في أنقرة</h1>
      <p class="article-dek">المفاوضات مستمرة</p>
      <figure><img src="/img/ankara.jpg" alt="أنقرة">
        <figcaption>وفد في أنقرة <span class="photo-credit">Agency/Photographer</span></figcaption></figure>
      <p>قال مسؤولون إن المفاوضات ستستمر.</p>
      <div class="share-tools"><p>Share this story on social media</p></div>
      <p>وحذّر محللون من أن الجولات السابقة انتهت دون اتفاق.</p>
      <ul class="related-stories"><li><a href="/x">Another story you may like</a></li></ul>
    </article></body></html>"""
    event = build_event(article_from_html(page.encode()), Settings())
    assert event["article_id"] == "news.example.org:talks-resume-id-7"
    assert (event["headline"], event["subheadline"]) == ("استئناف المحادثات في أنقرة", "المفاوضات مستمرة")
    (image,) = event["images"]
    assert image == {"url": "https://news.example.org/img/ankara.jpg", "caption": "وفد في أنقرة",
                     "credit": "Agency/Photographer", "alt_text": "أنقرة", "width": None, "height": None,
                     "media_type": "image/jpeg"}
    assert event["body"] == ("<p>قال مسؤولون إن المفاوضات ستستمر.</p>"
                             "<p>وحذّر محللون من أن الجولات السابقة انتهت دون اتفاق.</p>")
    for furniture in ("cookies", "Share this story", "Another story"):
        assert furniture not in json.dumps(event, default=str, ensure_ascii=False)


def test_story_container_with_a_furniture_like_class_is_kept() -> None:
    page = ("<html lang='en'><body><div class='content has-sidebar'><article class='post has-related-posts'>"
            "<h1>Headline kept</h1><p>The story's only paragraph is long enough to be a paragraph of news.</p>"
            "<div class='related-posts'><p>Read also: something else entirely</p></div></article></div></body></html>")
    event = build_event(article_from_html(page, article_id="p1"), AGENCY)
    assert event["headline"] == "Headline kept"
    assert event["body"] == "<p>The story's only paragraph is long enough to be a paragraph of news.</p>"


def test_headline_in_an_entry_header_outside_the_article() -> None:
    page = ("<html lang='fr'><body><header class='site-header'><nav><a href='/'>Accueil</a></nav></header>"
            "<header class='entry-header'><h1>Reprise des pourparlers à Ankara</h1>"
            "<h2>Sous la pression régionale</h2></header>"
            "<article><p>Des responsables ont déclaré que les négociations se poursuivraient demain.</p></article>"
            "</body></html>")
    event = build_event(article_from_html(page, article_id="fr-1"), AGENCY)
    assert (event["headline"], event["subheadline"]) == ("Reprise des pourparlers à Ankara", "Sous la pression régionale")
    assert "Accueil" not in event["body"] and event["body"].startswith("<p>Des responsables")


@pytest.mark.parametrize("width, height", [("²", "٦٨٣"), ("9" * 5000, "-683"), ("１０２４", "683px")])
def test_image_sizes_that_are_not_ascii_pixels_are_left_out_not_a_crash(width: str, height: str) -> None:
    page = PAGE.read_bytes()
    for template, size, value in (('width="{}"', 1024, width), ('height="{}"', 683, height),
                                  ('og:image:width" content="{}"', 1024, width),
                                  ('og:image:height" content="{}"', 683, height)):
        assert template.format(size).encode() in page
        page = page.replace(template.format(size).encode(), template.format(value).encode())
    (image,) = build_event(article_from_html(page), Settings())["images"]
    assert image["caption"] == EXPECTED["image"]["caption"]
    assert (image["width"], image["height"]) == (None, None)
