"""The example payloads of docs/partners.md (docs/partners/examples/), rendered by the pusher's own
renderer (:func:`newswire.consumers.webhooks.payloads.render`) from fixed events.

``tests/test_partner_guide.py`` checks that the files still are what the renderer makes and that
real pushes of the same events carry exactly these bytes (ninjs: compact on the wire, indented in
the files). After a deliberate change of the payloads, write them again with
``.venv/bin/python -m tests.partner_examples``.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from newswire import corpus
from newswire.codec import ArticleEvent
from newswire.consumers.webhooks import payloads

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "partners" / "examples"
AUTHORITY = "newswire.example.org"  # the test installation's (tests/conftest.py)
AT = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
#: the delivery's sequence number in each example
SEQ = {"story": 41, "update": 42, "correction": 43, "kill": 44, "withdrawal": 46}


def events() -> dict[str, ArticleEvent]:
    """Story, update, correction and kill of one article; a withdrawal of another (whose story is seq 45)."""
    story = corpus.story(random.Random(1), "tml-2026-12-01-ceasefire", occurred_at=AT, body_bytes=300, images=1,
                         language="en")
    story["event_id"] = "7d0f3c1e-4b7a-4c47-9a43-0d1c2e9b5a01"
    update = corpus.next_version(story, "updated", body=story["body"] + "<p>Talks resumed at noon.</p>")
    update["event_id"] = "7d0f3c1e-4b7a-4c47-9a43-0d1c2e9b5a02"
    correction = corpus.next_version(update, "corrected", correction_note="An earlier version gave the wrong day.")
    correction["event_id"] = "7d0f3c1e-4b7a-4c47-9a43-0d1c2e9b5a03"
    kill = corpus.next_version(correction, "killed", kill_reason="Legal advice: do not use.")
    kill["event_id"] = "7d0f3c1e-4b7a-4c47-9a43-0d1c2e9b5a04"
    other = corpus.story(random.Random(2), "tml-2026-12-01-markets", occurred_at=AT + timedelta(minutes=1),
                         body_bytes=300, images=0, language="en")
    other["event_id"] = "7d0f3c1e-4b7a-4c47-9a43-0d1c2e9b5a05"
    withdrawal = corpus.next_version(other, "withdrawn", kill_reason="Under review.")
    withdrawal["event_id"] = "7d0f3c1e-4b7a-4c47-9a43-0d1c2e9b5a06"
    return {"story": story, "update": update, "correction": correction, "kill": kill,
            "withdrawal-story": other, "withdrawal": withdrawal}


def examples() -> dict[str, str]:
    """File name → content of every example."""
    found = events()
    out = {f"{name}.json": json.dumps(json.loads(payloads.render(found[name], "ninjs", seq=seq, at=AT,
                                                                   authority=AUTHORITY)),
                                      indent=2, ensure_ascii=False) + "\n"
           for name, seq in SEQ.items()}
    out["story.newsml.xml"] = payloads.render(found["story"], "newsml", seq=SEQ["story"], at=AT,
                                              authority=AUTHORITY).decode()
    out["story.rss.xml"] = payloads.render(found["story"], "rss", seq=SEQ["story"], at=AT,
                                           authority=AUTHORITY).decode()
    return out


def main() -> None:
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for name, text in examples().items():
        (EXAMPLES / name).write_text(text, encoding="utf-8")
        print(EXAMPLES / name)


if __name__ == "__main__":
    main()
