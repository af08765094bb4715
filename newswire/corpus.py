"""Generated article events that look like a Middle East news agency's output.

Used by the demo, the benchmarks and the tests: several languages (English, Arabic,
Hebrew, French), bylines, datelines, images, categories, ~6 KB bodies by default,
and every event type. Deterministic for a given seed.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

from newswire.codec import ArticleEvent
from newswire.sanitize import word_count

_PLACES = ["Jerusalem", "Ramallah", "Gaza City", "Beirut", "Damascus", "Amman", "Cairo", "Baghdad",
           "Riyadh", "Doha", "Ankara", "Istanbul", "Tehran", "Dubai", "Tel Aviv", "Idlib Province, Syria"]
_CATEGORIES = ["politics", "conflict", "diplomacy", "economy", "society", "religion", "culture",
               "energy", "health", "technology", "environment", "sport"]
_NAMES = ["Maya Cohen", "Ahmad Khalil", "Layla Haddad", "Yosef Mizrahi", "Omar Farouk",
          "Noa Levi", "Rania Saleh", "Kerem Aydin", "سارة العلي", "יעל ברק"]
_HEADLINES = {
    "en": "{place} talks on {topic} resume as regional pressure mounts",
    "ar": "استئناف المحادثات في {place} بشأن {topic} وسط ضغوط إقليمية",
    "he": "השיחות ב{place} על {topic} מתחדשות על רקע לחץ אזורי",
    "fr": "Reprise des pourparlers à {place} sur {topic} sous la pression régionale",
}
_SENTENCES = {
    "en": ["Officials in {place} said on {day} that negotiations over {topic} would continue.",
           "“We are not far from an understanding, but the details matter,” one diplomat said.",
           "Analysts cautioned that previous rounds had ended without agreement.",
           "The talks come as aid agencies warn of worsening conditions for civilians.",
           "Markets in the region reacted cautiously to the news, with the local currency steady."],
    "ar": ["قال مسؤولون في {place} يوم {day} إن المفاوضات بشأن {topic} ستستمر.",
           "«لسنا بعيدين عن تفاهم، لكن التفاصيل مهمة»، قال أحد الدبلوماسيين.",
           "وحذّر محللون من أن الجولات السابقة انتهت دون اتفاق."],
    "he": ["גורמים ב{place} אמרו ביום {day} כי המשא ומתן על {topic} יימשך.",
           "„איננו רחוקים מהבנות, אבל הפרטים חשובים”, אמר אחד הדיפלומטים.",
           "אנליסטים הזהירו כי סבבים קודמים הסתיימו ללא הסכם."],
    "fr": ["Des responsables à {place} ont déclaré {day} que les négociations sur {topic} se poursuivraient.",
           "« Nous ne sommes pas loin d'un accord, mais les détails comptent », a déclaré un diplomate.",
           "Les analystes ont averti que les cycles précédents s'étaient achevés sans accord."],
}
_TOPICS = {"en": "the ceasefire", "ar": "وقف إطلاق النار", "he": "הפסקת האש", "fr": "le cessez-le-feu"}


def new_event_id() -> str:
    return str(uuid.uuid4())


def story(rng: random.Random, article_id: str, *, language: str | None = None, body_bytes: int = 6000,
          occurred_at: datetime | None = None, images: int | None = None) -> ArticleEvent:
    """Version 1 (``published``) of a generated story."""
    language = language or rng.choice(["en", "en", "en", "ar", "he", "fr"])
    place = rng.choice(_PLACES)
    topic = _TOPICS[language]
    when = occurred_at or datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randrange(500_000))
    paragraphs: list[str] = []
    size = 0  # the paragraphs' UTF-8 bytes so far (a running total: summed again each time, a 1 MB body took minutes)
    while size < body_bytes:
        sentences = rng.sample(_SENTENCES[language], k=min(3, len(_SENTENCES[language])))
        paragraphs.append(" ".join(s.format(place=place, topic=topic, day=when.strftime("%A")) for s in sentences))
        size += len(paragraphs[-1].encode())
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    categories = rng.sample(_CATEGORIES, k=rng.randint(1, 3))
    n_images = rng.randint(0, 2) if images is None else images
    return {
        "event_id": new_event_id(),
        "event_type": "published",
        "article_id": article_id,
        "version": 1,
        "occurred_at": when,
        "first_created": when,
        "headline": _HEADLINES[language].format(place=place, topic=topic),
        "subheadline": None if rng.random() < 0.3 else f"{place}: {topic}",
        "slugline": f"{place.split(',')[0].upper().replace(' ', '-')}-TALKS",
        "bylines": [{"name": name, "role": "reporter"} for name in rng.sample(_NAMES, k=rng.randint(1, 2))],
        "dateline": {"place": place.upper(), "date": when.date()},
        "language": language,
        "body": body,
        "summary": paragraphs[0][:200],
        "categories": categories,
        "subjects": [],
        "keywords": [topic, place],
        "places": [place],
        "urgency": rng.randint(1, 9),
        "canonical_url": f"https://news.example.org/{language}/{article_id}",
        "images": [{
            "url": f"https://media.example.org/{article_id}/{i}.jpg",
            "caption": f"A street in {place} on {when:%B %d}.",
            "credit": f"{rng.choice(_NAMES)}/Agency",
            "width": 1920, "height": 1080, "media_type": "image/jpeg",
            "alt_text": f"Street scene in {place}",
        } for i in range(n_images)],
        "embargo_until": None,
        "correction_note": None,
        "kill_reason": None,
        "provider": "The Media Line",
        "copyright_notice": f"© {when.year} The Media Line",
        "usage_terms": "For use by subscribing partners only.",
        "word_count": word_count(body),
        "content_warning": None,
    }


def next_version(previous: ArticleEvent, event_type: str, *, at: datetime | None = None,
                 **changes) -> ArticleEvent:
    """The next version of an article: same article id and first_created, a new event id."""
    event = dict(previous)
    event.update(
        event_id=new_event_id(), event_type=event_type, version=previous["version"] + 1,
        occurred_at=at or previous["occurred_at"] + timedelta(minutes=5),
    )
    if event_type == "corrected":
        event["correction_note"] = changes.pop("correction_note", "An earlier version misstated a figure.")
    if event_type in ("killed", "withdrawn"):
        event["kill_reason"] = changes.pop("kill_reason", "Legal advice.")
        event["body"] = ""
        event["word_count"] = 0
    event.update(changes)
    return event


def stream(n: int, seed: int = 7, *, body_bytes: int = 6000, versions: bool = True) -> Iterator[ArticleEvent]:
    """``n`` events: mostly new stories, with updates, corrections, kills and withdrawals of earlier ones."""
    rng = random.Random(seed)
    latest: dict[str, ArticleEvent] = {}  # live articles only, in order of first publication
    for i in range(n):
        roll = rng.random()
        if versions and latest and roll < 0.25:
            recent = list(itertools.islice(reversed(latest), 200))[::-1]  # the newest 200, oldest first
            previous = latest[rng.choice(recent)]
            kind = rng.choices(["updated", "corrected", "killed", "withdrawn"], weights=[60, 25, 10, 5])[0]
            event = next_version(previous, kind)
            if kind in ("killed", "withdrawn"):
                del latest[event["article_id"]]
                yield event
                continue
        else:
            event = story(rng, f"nw-{seed}-{i:07d}", body_bytes=body_bytes)
        latest[event["article_id"]] = event
        yield event
