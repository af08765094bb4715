"""The wire format of article events: Avro single-object encoding.

A message value is ``C3 01`` + the writer schema's 8-byte CRC-64-AVRO fingerprint
(little-endian, as the Avro specification says) + the Avro binary body. A reader finds
the writer schema by its fingerprint among ``schemas/article_event.v*.avsc`` and resolves
it against its own reader schema (by default the newest), so v1 events read as v2 and
v2 events read as v1.

Anything that is not such a message raises :class:`DecodeError` with the reason, which
consumers put on the dead-letter topic.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

#: An article event as Python values: the record of ``ArticleEvent`` (see schemas/).
ArticleEvent = dict[str, Any]

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
_SCHEMA_FILE = re.compile(r"article_event\.v(\d+)\.avsc$")


class DecodeError(ValueError):
    """A message value that is not a readable article event."""


@dataclass(frozen=True)
class Schema:
    """One version of the article event schema."""

    version: int
    parsed: dict[str, Any]
    fingerprint: bytes

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def schema_fingerprint(parsed: dict[str, Any]) -> bytes:
    """The CRC-64-AVRO fingerprint of a parsed schema, as the 8 bytes single-object encoding uses."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def load_schema(text: str, version: int) -> Schema:
    parsed = parse_schema(json.loads(text))
    return Schema(version=version, parsed=parsed, fingerprint=schema_fingerprint(parsed))


@functools.cache
def schemas() -> tuple[Schema, ...]:
    """Every version of the article event schema shipped in ``schemas/``, oldest first."""
    found = []
    for entry in importlib.resources.files("newswire.schemas").iterdir():
        match = _SCHEMA_FILE.match(entry.name)
        if match:
            found.append(load_schema(entry.read_text(encoding="utf-8"), int(match.group(1))))
    if not found:
        raise RuntimeError("no article_event.v*.avsc schema found in newswire.schemas")
    return tuple(sorted(found, key=lambda s: s.version))


def latest() -> Schema:
    return schemas()[-1]


def schema_version(version: int) -> Schema:
    for schema in schemas():
        if schema.version == version:
            return schema
    raise KeyError(f"no article event schema v{version}")


@functools.cache
def _by_fingerprint() -> dict[bytes, Schema]:
    return {schema.fingerprint: schema for schema in schemas()}


def encode(event: ArticleEvent, schema: Schema | None = None) -> bytes:
    """Encode an event with ``schema`` (the newest by default) in single-object encoding.

    Keys that cannot name an Avro field (with a colon: what a consumer marks an event with,
    such as ``newswire.seal.MARK``) are not part of the event and are left out. Raises
    ``ValueError`` naming the field when the event does not fit the schema.
    """
    schema = schema or latest()
    if any(":" in key for key in event):
        event = {key: value for key, value in event.items() if ":" not in key}
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(schema.fingerprint)
    try:
        fastavro.schemaless_writer(out, schema.parsed, event, strict_allow_default=True)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ValueError(f"event does not fit article event schema v{schema.version}: {exc}") from exc
    return out.getvalue()


def writer_schema(payload: bytes) -> Schema:
    """The schema a payload was written with, from its single-object header."""
    if payload is None or len(payload) < HEADER_SIZE:
        raise DecodeError(f"payload of {0 if payload is None else len(payload)} bytes is shorter than the single-object header")
    if payload[:2] != MAGIC:
        raise DecodeError(f"payload does not start with the Avro single-object marker C3 01 (got {payload[:2].hex()})")
    fp = payload[2:HEADER_SIZE]
    try:
        return _by_fingerprint()[fp]
    except KeyError:
        raise DecodeError(f"unknown writer schema fingerprint {fp.hex()}") from None


def decode(payload: bytes, reader: Schema | None = None) -> ArticleEvent:
    """Decode a single-object encoded event, resolving its writer schema against ``reader``."""
    writer = writer_schema(payload)
    reader = reader or latest()
    body = io.BytesIO(payload[HEADER_SIZE:])
    try:
        event = fastavro.schemaless_reader(body, writer.parsed, reader.parsed)
    except Exception as exc:  # fastavro raises many kinds on corrupt input
        raise DecodeError(f"Avro body does not decode with schema v{writer.version}: {type(exc).__name__}: {exc}") from exc
    if body.tell() != len(payload) - HEADER_SIZE:
        raise DecodeError(
            f"{len(payload) - HEADER_SIZE - body.tell()} trailing bytes after the Avro body"
        )
    if isinstance(event.get("event_id"), uuid.UUID):
        event["event_id"] = str(event["event_id"])
    return event
