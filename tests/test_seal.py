"""The cleaning seal (newswire.seal): a consumer skips cleaning an event only when the HMAC of
newswire's producer verifies; an event written by anyone else (no seal, a forged one, one
copied from another event, another key) is cleaned as before and never puts active content
into an output. Through the real broker: the producer, the consume loop, replay's Kafka
source and the archive (which keeps whether the seal verified)."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import replace

import pytest

from newswire import bus, codec, seal
from newswire.config import ConfigError, Settings
from newswire.consumers.archive.archiver import default_root
from newswire.consumers.archive.archiver import event_loop as archive_loop
from newswire.consumers.replay.sources import ArchiveSource, KafkaSource
from newswire.consumers.replay.window import Window
from newswire.formats import prepare, registry
from newswire.producers.article import build_event
from newswire.producers.publish import Submission, publish_once
from newswire.sanitize import word_count
from tests.corpus_cases import HOSTILE_HEADLINE, hostile

KEY = secrets.token_hex(32)
AUTHORITY = "news.agency.example"
ACTIVE = (b"<script", b"javascript:", b"onerror", b"onclick", b"<iframe", b"\xe2\x80\xae")  # the last: U+202E


def _document(article_id: str) -> dict:
    return {"article_id": article_id, "headline": "Talks resume in Doha", "language": "en",
            "body": "<p>Officials said talks <b>resume</b> &amp; go on.</p><script>x()</script>",
            "categories": ["politics"], "bylines": [{"name": "Maya  Cohen"}]}


def test_a_seal_verifies_only_for_its_payload_and_key():
    payload = codec.encode(hostile())
    header = [(seal.HEADER, seal.seal(payload, KEY))]
    assert seal.verified(payload, header, KEY)
    assert not seal.verified(payload, header, secrets.token_hex(32))  # another installation's key
    assert not seal.verified(payload, header, None)  # no key configured: nothing is trusted
    assert not seal.verified(payload, [], KEY)
    assert not seal.verified(payload, [(seal.HEADER, b"v1=" + b"0" * 64)], KEY)
    assert not seal.verified(payload[:-1] + bytes([payload[-1] ^ 1]), header, KEY)  # a payload changed after sealing
    other = codec.encode({**hostile(), "event_id": str(uuid.uuid4())})
    assert not seal.verified(other, header, KEY)  # a seal copied from another event


def test_the_mark_cannot_come_from_the_topic():
    """Avro field names cannot hold a colon, so no decoded event carries the mark."""
    assert ":" in seal.MARK
    event = codec.decode(codec.encode(hostile()))
    assert not seal.is_clean(event)
    assert seal.is_clean(seal.mark(event, codec.encode(hostile()), [], None)) is False


def test_a_sealed_event_renders_as_the_same_event_cleaned():
    """What the producer made, read with its seal verified, renders byte for byte as when
    every field is cleaned again; the sealed story takes its body's word count from the event,
    which the producer counted as the renderers would."""
    settings = replace(Settings(provider="Newswire Test Agency", id_authority=AUTHORITY), clean_key=KEY)
    event = build_event(_document("seal-same"), settings)
    sealed, cleaned = prepare({**event, seal.MARK: True}, authority=AUTHORITY), prepare(event, authority=AUTHORITY)
    assert sealed.word_count == event["word_count"] == word_count(cleaned.body) == 7 and cleaned.word_count is None
    assert sealed._replace(word_count=None) == cleaned
    for fmt in registry.FORMATS.values():
        assert fmt.item({**event, seal.MARK: True}, AUTHORITY) == fmt.item(event, AUTHORITY)


def test_a_short_key_is_refused(monkeypatch):
    monkeypatch.setenv("NEWSWIRE_CLEAN_KEY", "short")
    with pytest.raises(ConfigError, match="NEWSWIRE_CLEAN_KEY: 5 characters is too short"):
        Settings.from_env()
    monkeypatch.setenv("NEWSWIRE_CLEAN_KEY", KEY)
    assert Settings.from_env().clean_key == KEY and KEY not in repr(Settings.from_env())


def _hostile_on_topic(settings: Settings, kafka, headers=(), clean_key: str | None = None) -> dict:
    """A hostile event written straight to the topic (bypassing the producer) with ``headers``
    (and sealed with ``clean_key``)."""
    event = {**hostile(), "article_id": f"bypass-{uuid.uuid4().hex[:6]}", "event_id": str(uuid.uuid4())}
    bus.send_event(kafka, settings.topics.articles, event, headers=list(headers), clean_key=clean_key).get(timeout=10)
    return event


def test_only_the_producers_events_are_trusted_and_the_others_stay_harmless(settings):
    settings = replace(settings, clean_key=KEY)
    (published,) = publish_once(settings, [Submission.of(_document("seal-clean"), build_event(
        _document("seal-clean"), settings))])
    kafka = bus.producer(settings)
    unsealed = _hostile_on_topic(settings, kafka, [])
    forged = _hostile_on_topic(settings, kafka, [(seal.HEADER, b"v1=" + secrets.token_hex(32).encode())])
    copied_header = bus.event_headers(published.event, codec.latest())  # not a seal: the producer's own headers
    copied = _hostile_on_topic(settings, kafka, copied_header + [(seal.HEADER, seal.seal(b"another payload", KEY))])
    foreign = _hostile_on_topic(settings, kafka, clean_key=secrets.token_hex(32))  # another installation's key
    kafka.close()
    bypassing = {unsealed["event_id"], forged["event_id"], copied["event_id"], foreign["event_id"]}

    seen: dict[str, dict] = {}
    loop = bus.EventLoop(settings, f"seal-{uuid.uuid4().hex[:6]}", lambda d: seen.setdefault(d.event["event_id"],
                                                                                            d.event))
    for _ in range(60):
        if len(seen) >= 5:
            break
        loop.poll_once(timeout_ms=500)
    loop.close()
    assert len(seen) == 5
    assert seal.is_clean(seen[published.event["event_id"]])
    assert [e for i, e in seen.items() if i != published.event["event_id"] and seal.is_clean(e)] == []
    for event_id in bypassing:
        story = prepare(seen[event_id], authority=AUTHORITY)
        assert HOSTILE_HEADLINE not in story.headline and "<script" not in story.body  # cleaned as ever
        for fmt in registry.FORMATS.values():
            out = fmt.item(seen[event_id], AUTHORITY)
            if fmt.push == "envelope":  # ninjs: plain-text fields may say "<script>" as text; the body may not
                out = "".join(b["value"] for b in json.loads(out).get("bodies", ())).encode()
            assert not any(active in out for active in ACTIVE), (fmt.name, out[:300])

    kafka_source = KafkaSource(settings, Window())
    try:
        marked = {i.event["event_id"]: seal.is_clean(i.event) for i in kafka_source.items({})}
    finally:
        kafka_source.close()
    assert marked == {event_id: event_id == published.event["event_id"] for event_id in seen}

    loop, archiver = archive_loop(settings, instance_id=None)
    for _ in range(60):
        if archiver.archived >= 5:
            break
        loop.poll_once(timeout_ms=500)
    loop.close()
    archiver.close()
    archive = ArchiveSource(settings, Window(), default_root(settings))
    try:
        from_archive = {i.event["event_id"]: seal.is_clean(i.event) for i in archive.items({})}
    finally:
        archive.close()
    assert from_archive == marked
