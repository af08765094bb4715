"""The format registry: one table every part looks formats up in."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from newswire.consumers.webhooks import drop, payloads
from newswire.consumers.webhooks.partners import Partner
from newswire.formats import registry
from tests.corpus_cases import NOW, cases

PLAIN = cases()["plain"]


def test_every_name_and_alias_finds_its_format_and_an_unknown_one_is_named():
    assert registry.get("json") is registry.get("ninjs") is registry.FORMATS["ninjs"]
    with pytest.raises(ValueError, match=r"^format: 'nitf' is not one of atom, json, newsml, ninjs, ninjs2, rss$"):
        registry.get("nitf")


@pytest.mark.parametrize("name", list(registry.FORMATS))
def test_each_format_renders_an_item_and_a_feed_that_parse(name):
    fmt = registry.FORMATS[name]
    item = fmt.item(PLAIN, "news.agency.example")
    feed = fmt.feed([PLAIN, PLAIN], registry.Channel(updated=NOW, title="t", link="https://x.example/",
                                                     self_url="https://x.example/f", feed_id="https://x.example/f",
                                                     description="d", head={"feed": "all"}), "news.agency.example")
    for document in (item, feed):
        if fmt.media_type == "application/json":
            json.loads(document)
        else:
            etree.fromstring(document)
    assert b"news.agency.example" in item


def test_a_delivery_file_is_named_for_the_content_type_it_was_rendered_in():
    for fmt in registry.FORMATS.values():
        assert registry.push_extension(fmt.push_media_type + "; charset=utf-8") == fmt.extension
        assert drop.file_name(1, "a", 2, fmt.name).endswith("." + fmt.extension)
    with pytest.raises(ValueError, match="^content_type: 'text/plain'"):
        registry.push_extension("text/plain")


@pytest.mark.parametrize("name", list(registry.FORMATS))
def test_a_partner_of_each_format_gets_its_payload_in_its_content_type(name):
    partner = Partner(id="p", name="P", url="https://p.example/hook", format=name, secrets=("whsec_" + "A" * 32,))
    body = payloads.render(PLAIN, name, seq=7, at=NOW, authority="news.agency.example")
    assert partner.content_type == registry.FORMATS[name].push_media_type
    if partner.content_type == "application/json":
        assert json.loads(body)["sequence"] == 7
    else:
        root = etree.fromstring(body)
        if name == "newsml":
            assert root.findtext("{*}header/{*}transmitId") == "7"
