"""IPTC Media Topics (scheme alias ``medtop``): the vocabulary, its Subject Code mappings, and
the agency's category names mapped to topics.

The vocabulary is ``mediatopics.json`` beside this module, derived from IPTC's NewsCodes
(CC BY 4.0; ``tests/newscodes.py`` derives it and checks it): each topic's English name, the
IPTC Subject Code (``subj:NNNNNNNN``, the older vocabulary that wire-ingest systems such as
Superdesk read) IPTC maps it to, and when IPTC retired it. :func:`lookup` answers for one
QCode; :func:`subject_code` gives the Subject Code a renderer emits beside the topic: IPTC's
exactMatch, else its closeMatch, else its broadMatch (the nearest broader Subject Code), and
none when IPTC maps none (160 of the 1,286 topics).

The category table:

A small, documented table, not the whole vocabulary: each of the agency's categories maps
to one Media Topic concept, by its permanent id (``http://cv.iptc.org/newscodes/mediatopic/<id>``,
QCode ``medtop:<id>``). The ids and English names are IPTC's (the 17 top-level concepts and
``international relations``, a child of ``politics``); IPTC renames concepts now and then but
never changes their ids. A category that is not in the table is not a subject: the producer
keeps it as a keyword (see docs/article-json.md).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import NamedTuple

SCHEME = "medtop"
SCHEME_URI = "http://cv.iptc.org/newscodes/mediatopic/"
SUBJECT_CODE_SCHEME = "subj"
SUBJECT_CODE_URI = "http://cv.iptc.org/newscodes/subjectcode/"
VOCABULARY = Path(__file__).with_name("mediatopics.json")


class Concept(NamedTuple):
    """A Media Topic of IPTC's vocabulary."""

    code: str  #: ``medtop:NNNNNNNN``
    name: str  #: English (en-GB)
    subject_code: str | None  #: the IPTC Subject Code it maps to, ``subj:NNNNNNNN``
    subject_name: str | None  #: that Subject Code's English name
    retired: str | None  #: the day IPTC retired it (YYYY-MM-DD)


@functools.cache
def _vocabulary() -> dict[str, Concept]:
    topics = json.loads(VOCABULARY.read_text(encoding="utf-8"))["topics"]
    return {code: Concept(code, *row) for code, row in topics.items()}


def lookup(code: str) -> Concept | None:
    """The concept of Media Topic QCode ``code``, or None when IPTC's vocabulary has none."""
    return _vocabulary().get(code)


def subject_code(code: str) -> Concept | None:
    """The concept of ``code`` when IPTC maps it to a Subject Code (see module doc), else None."""
    concept = lookup(code)
    return concept if concept is not None and concept.subject_code else None


class MediaTopic(NamedTuple):
    code: str  #: the QCode, e.g. ``medtop:11000000``
    name: str  #: IPTC's English (en-GB) name


def _topic(number: str, name: str) -> MediaTopic:
    return MediaTopic(f"{SCHEME}:{number}", name)


ARTS = _topic("01000000", "arts, culture, entertainment and media")
CRIME = _topic("02000000", "crime, law and justice")
DISASTER = _topic("03000000", "disaster, accident and emergency incident")
ECONOMY = _topic("04000000", "economy, business and finance")
EDUCATION = _topic("05000000", "education")
ENVIRONMENT = _topic("06000000", "environment")
HEALTH = _topic("07000000", "health")
HUMAN_INTEREST = _topic("08000000", "human interest")
LABOUR = _topic("09000000", "labour")
LIFESTYLE = _topic("10000000", "lifestyle and leisure")
POLITICS = _topic("11000000", "politics")
RELIGION = _topic("12000000", "religion")
SCIENCE = _topic("13000000", "science and technology")
SOCIETY = _topic("14000000", "society")
SPORT = _topic("15000000", "sport")
CONFLICT = _topic("16000000", "conflict, war and peace")
WEATHER = _topic("17000000", "weather")
INTERNATIONAL_RELATIONS = _topic("20000638", "international relations")

#: category name (lower case, as the agency's CMS spells it) -> Media Topic
BY_CATEGORY: dict[str, MediaTopic] = {
    "arts": ARTS, "culture": ARTS, "media": ARTS, "entertainment": ARTS,
    "crime": CRIME, "law": CRIME, "justice": CRIME,
    "disaster": DISASTER, "accident": DISASTER,
    "economy": ECONOMY, "business": ECONOMY, "finance": ECONOMY,
    "education": EDUCATION,
    "environment": ENVIRONMENT, "climate": ENVIRONMENT,
    "health": HEALTH,
    "human interest": HUMAN_INTEREST,
    "labour": LABOUR, "labor": LABOUR,
    "lifestyle": LIFESTYLE,
    "politics": POLITICS,
    "religion": RELIGION,
    "science": SCIENCE, "technology": SCIENCE,
    "society": SOCIETY,
    "sport": SPORT, "sports": SPORT,
    "conflict": CONFLICT, "war": CONFLICT, "peace": CONFLICT,
    "weather": WEATHER,
    "diplomacy": INTERNATIONAL_RELATIONS, "international relations": INTERNATIONAL_RELATIONS,
}


def for_category(category: str) -> MediaTopic | None:
    """The Media Topic of one of the agency's categories, or None when the table has none."""
    return BY_CATEGORY.get(" ".join(category.lower().split()))
