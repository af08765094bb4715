"""How ``newswire/mediatopics.json`` is derived from IPTC's NewsCodes in ../shared/standards/newscodes
(test_mediatopics checks that the vendored file is exactly this; regenerate it with
``python -m tests.newscodes > newswire/mediatopics.json``)."""

from __future__ import annotations

import json

from tests.corpus_cases import STANDARDS

NEWSCODES = STANDARDS / "newscodes"
SUBJECT_CODE_URI = "http://cv.iptc.org/newscodes/subjectcode/"


def derive() -> dict:
    """Per Media Topic: its English name, the IPTC Subject Code IPTC maps it to (exactMatch,
    else closeMatch, else broadMatch: the nearest broader Subject Code) with that code's
    English name, and the date it was retired, if it was."""
    vocabulary = json.loads((NEWSCODES / "mediatopic-cptall-x-all.json").read_text(encoding="utf-8"))
    names = json.loads((NEWSCODES / "subjectcode-names-en.json").read_text(encoding="utf-8"))
    topics = {}
    for concept in vocabulary["conceptSet"]:
        matches = [uri.removeprefix(SUBJECT_CODE_URI) for key in ("exactMatch", "closeMatch", "broadMatch")
                   for uri in concept.get(key, ()) if uri.startswith(SUBJECT_CODE_URI)]
        code = next((c for c in matches if c in names), None)
        label = concept["prefLabel"].get("en-GB") or concept["prefLabel"].get("en-US")
        topics[concept["qcode"]] = [label, code and f"subj:{code}", code and names[code],
                                    (concept.get("retired") or "")[:10] or None]
    return {"source": "IPTC NewsCodes (CC BY 4.0): mediatopic cptall-x-all released "
                      f"{vocabulary['dateReleased'][:10]}, subjectcode names (en)",
            "fields": ["name (en-GB)", "subject code", "subject code name (en)", "retired"],
            "topics": topics}


def dumps(data: dict) -> str:
    """The file's text: one topic a line."""
    head = {key: value for key, value in data.items() if key != "topics"}
    lines = [f"{json.dumps(code)}: {json.dumps(row, ensure_ascii=False)}" for code, row in data["topics"].items()]
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "topics": {\n' + ",\n".join(lines) + "\n}}\n"


if __name__ == "__main__":
    print(dumps(derive()), end="")
