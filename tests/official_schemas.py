"""The official schemas the outputs are validated against (../shared/standards), loaded once.

* :func:`ninjs_validator`: the ninjs 3.1 (or 2.2) JSON schema with its GeoJSON reference resolved from
  the local copy (never the network) and formats (date-time, uri, ...) checked;
* :func:`newsml_schema`: the NewsML-G2 2.35 XSD (Power conformance) for lxml.
"""

from __future__ import annotations

import functools
import json

import jsonschema
import referencing
from lxml import etree
from referencing.jsonschema import DRAFT202012

from tests.corpus_cases import STANDARDS

NINJS = STANDARDS / "ninjs"
GEOJSON = "https://geojson.org/schema/GeoJSON.json"
NINJS_ID = "http://www.iptc.org/std/ninjs/ninjs-schema_3.1.json"
NEWSML_XSD = STANDARDS / "newsml-g2" / "NewsML-G2_2.35-spec-All-Power.xsd"


def _ninjs_schema(version: str = "3.1") -> dict:
    return json.loads((NINJS / f"ninjs-schema_{version}.json").read_text(encoding="utf-8"))


@functools.cache
def ninjs_registry() -> referencing.Registry:
    """GeoJSON and ninjs 3.1 (by its ``$id``) from the local copies; any other reference fails."""
    geojson = referencing.Resource.from_contents(json.loads((NINJS / "GeoJSON.json").read_text(encoding="utf-8")),
                                                 default_specification=DRAFT202012)
    ninjs = referencing.Resource.from_contents(_ninjs_schema(), default_specification=DRAFT202012)

    def no_network(uri: str):
        raise referencing.exceptions.NoSuchResource(ref=uri)

    return referencing.Registry(retrieve=no_network).with_resources([(GEOJSON, geojson), (NINJS_ID, ninjs)])


@functools.cache
def ninjs_validator(version: str = "3.1") -> jsonschema.Draft202012Validator:
    return validator(_ninjs_schema(version))


def validator(schema: dict) -> jsonschema.Draft202012Validator:
    """A strict validator of ``schema`` with the ninjs references resolved locally and formats checked."""
    return jsonschema.Draft202012Validator(schema, registry=ninjs_registry(),
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


@functools.cache
def newsml_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(NEWSML_XSD)))
