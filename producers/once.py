"""Publishing each article version once: the article id and the version are the natural key.

Before an event is written, the article's latest event is read back from the articles topic
(:class:`~newswire.producers.latest.ArticleLog`; an article with no event yet costs one read of
its whole partition, after which an :class:`~newswire.producers.latest.ArticleIndex` brought up
to the partition's end answers): the topic answers, not process memory, so the rule holds
across restarts and across several ingest processes and CLIs. Given the latest event on the topic:

* none, or an older version: the event is new and is published;
* the same version with the same content: a resend. Nothing is written and the stored event
  answers (its event id, partition, offset). The event id is not compared, nor are
  ``occurred_at`` and ``first_created`` when the sender left them to their default (the time
  of sending);
* the same version with other content, an older version, or anything after a kill: refused
  (409), naming the article, the version sent and the latest version on the topic, since every
  consumer would drop it;
* an ``Idempotency-Key`` (ingest API) is kept in a header of the event it made. A request whose
  key is on the article's latest event is answered by that event when it asks for the same
  thing, and refused (422) when it asks for something else.

What remains: two producers that send the same article in the same instant (between one's
look-up and the acknowledgement of its write, milliseconds) may both write it; the ingest API
serialises the requests for one article within its process, not across processes. Consumers
keep the first copy of a version and drop the second, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.events import ENDINGS

from .article import FieldError, build_event
from .latest import ArticleLog, Stored

#: fields a document may leave out, whose defaults (the time of sending) are not content
DEFAULTED = ("occurred_at", "first_created")


@dataclass(frozen=True)
class Submission:
    """An event to publish once, with what its sender left to defaults and its Idempotency-Key."""

    event: ArticleEvent
    defaulted: frozenset[str] = frozenset()
    idempotency_key: str | None = None

    @classmethod
    def of(cls, document: Mapping[str, Any], event: ArticleEvent, idempotency_key: str | None = None
           ) -> "Submission":
        return cls(event, frozenset(f for f in DEFAULTED if document.get(f) is None), idempotency_key)


class Refused(Exception):
    """Not published, and why: ``status`` 409 (a version the topic has or had) or 422 (a reused key)."""

    def __init__(self, status: int, error: FieldError, article_id: str, version: int | None = None):
        super().__init__(str(error))
        self.status = status
        self.error = error
        self.article_id = article_id
        self.version = version


def differences(submission: Submission, stored: ArticleEvent) -> list[str]:
    """The fields in which ``submission`` differs from the stored event of the same version."""
    skip = submission.defaulted | {"event_id"}
    return sorted(k for k, v in submission.event.items() if k not in skip and v != stored.get(k))


def _describe(stored: Stored) -> str:
    e = stored.event
    return f"version {e['version']} ({e['event_type']}, event {e['event_id']})"


def check(submission: Submission, latest: Stored | None) -> Stored | None:
    """The stored event that already answers ``submission`` (nothing to write), or None when it
    is new; :class:`Refused` when it must not be published (see the module doc)."""
    if latest is None:
        return None
    event, stored = submission.event, latest.event
    article, version, last = event["article_id"], event["version"], stored["version"]
    if submission.idempotency_key is not None and submission.idempotency_key == latest.idempotency_key:
        if changed := differences(submission, stored):
            raise Refused(422, FieldError("Idempotency-Key", f"was used for another request: article {article!r} "
                                          f"{_describe(latest)}, which differs in {', '.join(changed)}"),
                          article, version)
        return latest
    if stored["event_type"] == "killed":
        raise Refused(409, FieldError("version", f"article {article!r} was killed at version {last}: version "
                                      f"{version} refused, a kill is final"), article, version)
    if version < last:
        raise Refused(409, FieldError("version", f"article {article!r}: version {version} sent, the topic already "
                                      f"has {_describe(latest)}; a change is version {last + 1}"), article, version)
    if version == last:
        if changed := differences(submission, stored):
            raise Refused(409, FieldError("version", f"article {article!r}: version {version} is already on the "
                                          f"topic ({stored['event_type']}, event {stored['event_id']}) with other "
                                          f"content ({', '.join(changed)}); a change is version {last + 1}"),
                          article, version)
        return latest
    return None


def check_end(article_id: str, event_type: str, reason: str, idempotency_key: str | None,
              latest: Stored) -> Stored | None:
    """For a kill or withdrawal: the stored event made by the same request (its Idempotency-Key
    on the latest event), None when there is none; Refused (422) when the key asked for another thing."""
    if idempotency_key is None or idempotency_key != latest.idempotency_key:
        return None
    stored = latest.event
    if (stored["event_type"], stored["kill_reason"]) != (event_type, reason):
        raise Refused(422, FieldError("Idempotency-Key", f"was used for another request: article {article_id!r} "
                                      f"{_describe(latest)}"), article_id)
    return latest


def as_update(document: Mapping[str, Any], latest: Stored | None, settings: Settings) -> Submission:
    """``document`` as the next version of its article (``newswire publish --update``): version
    latest + 1 and the latest event's ``first_created`` (unless the document gives its own), or
    the latest version itself when the document brings nothing new. Refused when the article has
    no event yet, was killed or withdrawn, or the document gives another version; ArticleError
    when the document is not valid."""
    article = document.get("article_id")
    if latest is None:
        raise Refused(404, FieldError("article_id", f"article {article!r} has no event on topic "
                                      f"{settings.topics.articles}: publish its first version without --update"),
                      article)
    stored = latest.event
    last = stored["version"]
    if stored["event_type"] in ENDINGS:
        after = ("a kill is final" if stored["event_type"] == "killed" else
                 f"to publish it again, give version {last + 1} in the file and leave out --update")
        raise Refused(409, FieldError("article_id", f"article {article!r} was {stored['event_type']} at version "
                                      f"{last}; --update refused: {after}"), article)
    if document.get("version") not in (None, last + 1):
        raise Refused(409, FieldError("version", f"is {document['version']!r}, but --update makes version {last + 1} "
                                      f"of article {article!r}: leave version out"), article)
    filled = {**document, "version": last + 1}
    if filled.get("first_created") is None:
        filled["first_created"] = stored["first_created"].isoformat()
    submission = Submission.of(document, build_event(filled, settings))
    if differences(submission, stored) == ["version"]:  # the latest version already says this
        return Submission(submission.event | {"version": last}, submission.defaulted, submission.idempotency_key)
    return submission


def screen(articles: ArticleLog, submissions: Sequence[Submission]) -> list[Stored | Refused | int | None]:
    """Per submission, in order: the stored event that answers it, its Refused, the index of an
    earlier submission of the batch it repeats (int), or None when it is new and to be published.

    A submission is checked against the latest event on the topic or, when the batch has an
    earlier new event of the same article, against that one."""
    pending: dict[str, tuple[int, Stored]] = {}
    verdicts: list[Stored | Refused | int | None] = []
    for index, submission in enumerate(submissions):
        article = submission.event["article_id"]
        earlier = pending.get(article)
        latest = earlier[1] if earlier else articles.latest_or_none(article)
        try:
            found = check(submission, latest)
        except Refused as refused:
            verdicts.append(refused)
            continue
        if found is None:
            pending[article] = (index, Stored(submission.event, articles.topic, -1, -1, submission.idempotency_key))
        verdicts.append(earlier[0] if earlier and found is earlier[1] else found)
    return verdicts
