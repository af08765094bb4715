"""The event contract (newswire.events): one rule for article ids, event types and embargoes,
applied the same way by the renderers and the consumers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from newswire import codec, events
from newswire.consumers.feeds.view import FeedView, check
from newswire.formats import prepare
from tests.corpus_cases import NOW, cases

PLAIN = cases()["plain"]


def test_event_types_are_the_schemas_enum():
    field = next(f for f in codec.latest().parsed["fields"] if f["name"] == "event_type")
    assert events.EVENT_TYPES == tuple(field["type"]["symbols"])
    assert events.ENDINGS < events.FOLLOW_UPS <= set(events.EVENT_TYPES)


@pytest.mark.parametrize("refuse", [prepare, check, events.check, lambda e: FeedView().apply(e, NOW)],
                         ids=["renderers", "feed-view-check", "contract", "feed-view"])
def test_an_unknown_event_type_is_refused_everywhere_naming_the_field(refuse):
    with pytest.raises(ValueError, match=r"^event_type: 'retracted' is not one of published, updated"):
        refuse({**PLAIN, "event_type": "retracted"})


@pytest.mark.parametrize("article_id", ["", "a b", "x" * 129, "../etc", None])
def test_a_bad_article_id_is_refused_naming_the_field(article_id):
    with pytest.raises(ValueError, match="^article_id: "):
        events.check({**PLAIN, "article_id": article_id})


def test_visible_at_and_embargoed_share_one_rule():
    until = PLAIN["occurred_at"] + timedelta(hours=2)
    held = {**PLAIN, "embargo_until": until}
    assert events.visible_at(PLAIN) == PLAIN["occurred_at"]
    assert events.visible_at(held) == until
    assert events.visible_at({**PLAIN, "embargo_until": PLAIN["occurred_at"] - timedelta(hours=1)}) == PLAIN["occurred_at"]
    assert events.is_embargoed(held, until - timedelta(microseconds=1))
    assert not events.is_embargoed(held, until)  # it ends at its instant
    assert not events.embargoed(None, NOW)
