"""The vendored Media Topics vocabulary is exactly what tests/newscodes.py derives from IPTC's
NewsCodes in ../shared/standards, and its look-ups answer as IPTC's mappings say."""

from __future__ import annotations

from newswire import mediatopics
from tests.newscodes import derive, dumps


def test_the_vendored_vocabulary_is_derived_from_iptc_newscodes():
    assert mediatopics.VOCABULARY.read_text(encoding="utf-8") == dumps(derive())


def test_lookups_and_subject_code_mappings():
    armed = mediatopics.lookup("medtop:20000056")
    assert armed.name == "armed conflict" and armed.subject_code == "subj:16002000" and armed.retired is None
    assert mediatopics.subject_code("medtop:16000000").subject_code == "subj:16000000"  # IPTC's broadMatch
    assert mediatopics.subject_code("medtop:20001145") is None  # military service: IPTC maps no Subject Code
    assert mediatopics.lookup("medtop:20000064").retired == "2016-04-05"
    assert mediatopics.lookup("medtop:99999999") is None
    for topic in set(mediatopics.BY_CATEGORY.values()):  # the category table maps to current concepts
        assert mediatopics.lookup(topic.code).retired is None  # (names: IPTC renames now and then)
