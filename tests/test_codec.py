"""The event contract: single-object encoding, schema evolution in both directions, bad payloads."""

from __future__ import annotations

import importlib.resources
import io
import json
import random

import fastavro
import pytest

from newswire import codec, corpus


@pytest.fixture
def event():
    return corpus.story(random.Random(1), "art-1", images=1)


def test_round_trip_keeps_every_field(event):
    decoded = codec.decode(codec.encode(event))
    assert decoded == event


def test_single_object_header_is_marker_and_little_endian_crc64_fingerprint(event):
    payload = codec.encode(event)
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == codec.latest().fingerprint
    # the Avro specification's vector: CRC-64-AVRO of "int" is 0x7275d51a3f395c8f, little-endian on the wire
    assert codec.schema_fingerprint(fastavro.parse_schema("int")) == (0x7275D51A3F395C8F).to_bytes(8, "little")


def test_schemas_are_versioned_and_distinct():
    versions = codec.schemas()
    assert [s.version for s in versions] == [1, 2]
    assert len({s.fingerprint for s in versions}) == 2


def test_v1_event_reads_with_v2_reader(event):
    v1 = codec.schema_version(1)
    old = {k: v for k, v in event.items() if k != "content_warning"}
    decoded = codec.decode(codec.encode(old, v1), reader=codec.schema_version(2))
    assert decoded["content_warning"] is None
    assert decoded["headline"] == event["headline"]


def test_v2_event_reads_with_v1_reader(event):
    event["content_warning"] = "graphic descriptions of violence"
    decoded = codec.decode(codec.encode(event, codec.schema_version(2)), reader=codec.schema_version(1))
    assert "content_warning" not in decoded
    assert decoded["body"] == event["body"]


def test_unknown_event_type_symbol_resolves_to_the_enum_default(event):
    # a writer schema of the future, with a symbol today's reader does not know
    writer = json.loads(importlib.resources.files("newswire.schemas").joinpath("article_event.v2.avsc").read_text())
    for field in writer["fields"]:
        if field["name"] == "event_type":
            field["type"]["symbols"].append("republished")
    writer = fastavro.parse_schema(writer)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, writer, {**event, "event_type": "republished"})
    decoded = fastavro.schemaless_reader(io.BytesIO(body.getvalue()), writer, codec.latest().parsed)
    assert decoded["event_type"] == "updated"


@pytest.mark.parametrize("payload, reason", [
    (b"", "shorter than the single-object header"),
    (b"{\"headline\": 1}", "marker"),
    (b"\xc3\x01" + b"\x00" * 8 + b"abc", "unknown writer schema fingerprint"),
])
def test_bad_payloads_say_why(payload, reason):
    with pytest.raises(codec.DecodeError, match=reason):
        codec.decode(payload)


def test_truncated_body_and_trailing_bytes_are_rejected(event):
    payload = codec.encode(event)
    with pytest.raises(codec.DecodeError, match="does not decode"):
        codec.decode(payload[: len(payload) // 2])
    with pytest.raises(codec.DecodeError, match="trailing bytes"):
        codec.decode(payload + b"\x00\x01")


def test_encode_names_the_field_that_does_not_fit(event):
    event["version"] = "three"
    with pytest.raises(ValueError, match="version"):
        codec.encode(event)
