"""``newswire publish``: article files (JSON or HTML pages), kills and withdrawals onto Kafka.

Every file is read and validated first, then checked against the articles topic
(producers/once.py: each article version is published once); the new ones are then sent in
one batch and the command waits until Kafka confirmed each write (acks=all, idempotent
producer) before it prints them and exits. A file whose version is already on the topic with
the same content is not sent again: its line names the stored event and says ``already
published``. Like other wire tools, a batch with invalid or refused files still publishes its
valid ones: every invalid file is reported with its field errors, every refused one (a version
the topic already has, or had, or a killed story) with the latest version on the topic, and
the exit status says that not everything went out.

Exit status: 0 everything published (or already there); 1 some files invalid or refused (the
others published); 2 usage error; 3 Kafka did not confirm (broker down or timed out: nothing
is known to be published; publishing again is safe, a version already on the topic is not
sent twice).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click
from kafka import KafkaProducer
from kafka.errors import KafkaError
from tqdm import tqdm

from newswire import bus, logs
from newswire.codec import ArticleEvent
from newswire.config import Settings

from .article import ARTICLE_ID, ArticleError, FieldError, build_event, decode_document
from .html_page import PageError, article_from_html
from .latest import (ArticleLog, ArticleLogs, ArticleNotFound, Stored, key_headers, kill_event, reason_text,
                     withdraw_event)
from .once import Refused, Submission, as_update, check_end, screen

log = logs.get(__name__)


EXIT_INVALID = 1
EXIT_KAFKA = 3


class KafkaUnavailable(RuntimeError):
    """Kafka could not be reached or did not confirm a write in time."""


@dataclass(frozen=True)
class Published:
    """One event Kafka confirmed, and where it is."""

    event: ArticleEvent
    topic: str
    partition: int
    offset: int
    #: already on the topic (the same version, the same content): nothing was written
    duplicate: bool = False

    @classmethod
    def stored(cls, stored: Stored) -> "Published":
        return cls(stored.event, stored.topic, stored.partition, stored.offset, duplicate=True)

    def line(self) -> str:
        e = self.event
        return (f"article_id={e['article_id']} version={e['version']} event_type={e['event_type']} "
                f"event_id={e['event_id']} partition={self.partition} offset={self.offset}"
                + (" already published: nothing sent" if self.duplicate else ""))


def is_html(path: Path, raw: bytes) -> bool:
    """HTML by extension (.html, .htm); JSON by .json; otherwise by the first non-blank byte."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm", ".xhtml"):
        return True
    if suffix == ".json":
        return False
    return raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def load_document(path: Path, *, article_id: str | None = None, subjects: tuple[str, ...] = ()) -> dict[str, Any]:
    """The article document of one file (JSON, or an HTML page), with the Media Topic QCodes
    ``subjects`` added to its subjects; ArticleError when it cannot be one."""
    raw = path.read_bytes()
    if is_html(path, raw):
        try:
            document = article_from_html(raw, article_id=article_id)
        except PageError as exc:
            raise ArticleError([FieldError(exc.field, str(exc))]) from None
    elif article_id:
        raise ArticleError([FieldError("article_id", "--article-id is for HTML pages; an article JSON carries its own")])
    else:
        document = decode_document(raw)
    if subjects:  # checked against IPTC's vocabulary with the rest (build_event)
        given = document.get("subjects")
        document["subjects"] = [*(given if isinstance(given, list) else []), *({"code": c} for c in subjects)]
    return document


def next_versions(settings: Settings, articles: ArticleLog) -> Callable[[dict[str, Any]], Submission]:
    """What turns documents, in order, into the next versions of their articles
    (:func:`~newswire.producers.once.as_update` against the latest event on the topic, or the
    previous document of the same article in the batch); KafkaUnavailable when the topic cannot
    be read."""
    pending: dict[str, Stored] = {}

    def next_version(document: dict[str, Any]) -> Submission:
        article = document.get("article_id")
        if not (isinstance(article, str) and ARTICLE_ID.fullmatch(article)):
            build_event(document, settings)  # no id to look up: raises the ArticleError that names the field
        latest = pending.get(article) or articles.latest_or_none(article)
        submission = as_update(document, latest, settings)
        pending[article] = Stored(submission.event, articles.topic, -1, -1)
        return submission

    return next_version


def publish(settings: Settings, events: list[ArticleEvent], kafka: KafkaProducer | None = None,
            headers: list[bus.Headers] | None = None, *, cleaned: bool = False) -> list[Published]:
    """Send ``events`` and return them once Kafka confirmed every write; KafkaUnavailable otherwise.

    Uses ``kafka`` when given (a long-lived producer, e.g. the ingest API's), else a producer of
    its own that is closed afterwards. ``headers``: Kafka headers to add to each event, in order.
    ``cleaned``: every event was made by :func:`~newswire.producers.article.build_event` (cleaned
    whole), so it is sealed as such (:mod:`newswire.seal`). Kills and withdrawals are not: they
    carry the fields of the latest event on the topic, which anyone may have written.
    No check against the topic: :func:`publish_once` is what the CLI and the ingest API use.
    """
    if not events:
        return []
    own = kafka is None
    if own:
        kafka = connect(settings)
    try:
        metadata = bus.publish_events(settings, kafka, events, headers or (), cleaned=cleaned)
    except bus.PublishError as exc:
        raise KafkaUnavailable(str(exc)) from exc
    finally:
        if own:
            kafka.close(timeout=settings.producer_timeout_s)
    published = [Published(e, m.topic, m.partition, m.offset) for e, m in zip(events, metadata)]
    for p in published:
        log.info("article_published", article_id=p.event["article_id"], version=p.event["version"],
                 event_type=p.event["event_type"], event_id=p.event["event_id"], topic=p.topic,
                 partition=p.partition, offset=p.offset)
    return published


def publish_once(settings: Settings, submissions: list[Submission], kafka: KafkaProducer | None = None,
                 lookups: ArticleLogs | None = None) -> list[Published | Refused]:
    """Publish each article version once (producers/once.py): per submission, in order, its
    Published (``duplicate`` when the topic already had it) or its Refused. KafkaUnavailable
    when the topic cannot be read or the writes are not confirmed. ``lookups``: the long-lived
    readers of a server or a CLI call (:class:`~newswire.producers.latest.ArticleLogs`; default:
    a reader for this call)."""
    with _lookups(settings, lookups) as articles:
        verdicts = screen(articles, submissions)
    new = [s for s, verdict in zip(submissions, verdicts) if verdict is None]
    written = iter(publish(settings, [s.event for s in new], kafka, [key_headers(s.idempotency_key) for s in new],
                           cleaned=True))
    results: list[Published | Refused] = []
    for verdict in verdicts:
        if isinstance(verdict, Stored):
            results.append(Published.stored(verdict))
        elif isinstance(verdict, int):  # repeats an earlier submission of the batch
            results.append(replace(results[verdict], duplicate=True))
        else:
            results.append(verdict if isinstance(verdict, Refused) else next(written))
    for result in results:
        if isinstance(result, Published) and result.duplicate:
            log.info("article_already_published", article_id=result.event["article_id"],
                     version=result.event["version"], event_id=result.event["event_id"],
                     partition=result.partition, offset=result.offset)
        elif isinstance(result, Refused):
            log.warning("article_refused", article_id=result.article_id, version=result.version,
                        status=result.status, problem=str(result.error))
    return results


@contextmanager
def _lookups(settings: Settings, lookups: ArticleLogs | None = None) -> Iterator[ArticleLog]:
    """A reader of the articles topic (this thread's of ``lookups``, else one closed afterwards);
    Kafka's errors and timeouts, opening it or in the block, as KafkaUnavailable."""
    try:
        with lookups.reader() if lookups is not None else ArticleLog(settings) as articles:
            yield articles
    except (KafkaError, TimeoutError) as exc:
        raise KafkaUnavailable(bus.kafka_problem(settings, exc)) from exc


def connect(settings: Settings) -> KafkaProducer:
    """The durable producer of newswire.bus; KafkaUnavailable when no broker answers in time."""
    try:
        return bus.producer(settings)
    except KafkaError as exc:
        raise KafkaUnavailable(bus.kafka_problem(settings, exc)) from exc


def end_of_article(settings: Settings, article_id: str, reason: str, event_type: str,
                   idempotency_key: str | None = None, lookups: ArticleLogs | None = None
                   ) -> ArticleEvent | Published:
    """The kill or withdrawal event of ``article_id`` (its latest event, read back from Kafka);
    or, when ``idempotency_key`` is on that latest event and it is this kill or withdrawal, the
    Published it already is (:func:`newswire.producers.once.check_end`)."""
    with _lookups(settings, lookups) as articles:
        latest = articles.latest(article_id)
    if (stored := check_end(article_id, event_type, reason_text(reason), idempotency_key, latest)) is not None:
        return Published.stored(stored)
    make = kill_event if event_type == "killed" else withdraw_event
    return make(latest.event, reason)


def _report_invalid(name: str, error: ArticleError) -> None:
    click.echo(f"{name}: rejected", err=True)
    for problem in error.errors:
        click.echo(f"  {problem}", err=True)


def _load_all(settings: Settings, paths: Iterable[Path], article_id: str | None,
              make: Callable[[dict[str, Any]], Submission] | None = None, subjects: tuple[str, ...] = ()
              ) -> tuple[list[tuple[Path, Submission | Refused]], int]:
    """The submissions of ``paths`` (``make``: document -> submission, default as it stands) or
    their refusals; invalid and unreadable files are reported here and counted."""
    make = make or (lambda document: Submission.of(document, build_event(document, settings)))
    loaded, invalid = [], 0
    for path in tqdm(list(paths), desc="validating", unit="file", disable=None, leave=False):
        try:
            loaded.append((path, make(load_document(path, article_id=article_id, subjects=subjects))))
        except Refused as exc:  # reported with the topic's refusals
            loaded.append((path, exc))
        except ArticleError as exc:
            invalid += 1
            _report_invalid(str(path), exc)
            log.warning("article_rejected", file=str(path), errors=[str(e) for e in exc.errors])
        except OSError as exc:
            invalid += 1
            click.echo(f"{path}: cannot be read: {exc.strerror or exc}", err=True)
    return loaded, invalid


@click.command("publish")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kill", "kill_id", metavar="ARTICLE_ID", help="Kill this article (must not be used any more).")
@click.option("--withdraw", "withdraw_id", metavar="ARTICLE_ID", help="Withdraw this article (withheld for now).")
@click.option("--reason", help="Why the article is killed or withdrawn (required with --kill/--withdraw).")
@click.option("--article-id", help="Article id of a single HTML page (default: from its canonical URL).")
@click.option("--subject", "subjects", multiple=True, metavar="MEDTOP",
              help="An IPTC Media Topic (medtop:NNNNNNNN) to add to every FILE's subjects, as an editor "
                   "gives a page that carries none (repeatable).")
@click.option("--update", is_flag=True,
              help="FILES are new versions of published articles: version and first_created come from the "
                   "article's latest event on the topic.")
@click.pass_context
def publish_command(ctx: click.Context, files: tuple[Path, ...], kill_id: str | None, withdraw_id: str | None,
                    reason: str | None, article_id: str | None, subjects: tuple[str, ...], update: bool) -> None:
    """Publish article FILES (article JSON, or HTML article pages), or kill/withdraw an article.

    Updates and corrections are article JSON files with the article's id and the next version
    (see docs/article-json.md), or, with --update, without a version: it is the latest one on
    the topic + 1 (refused for an article with no event yet, or killed or withdrawn; the same
    file sent again is already published). Prints one line per event once Kafka confirmed it; a version
    already on the topic with the same content is not sent again (its line says so). Exit
    status: 0 all published, 1 some files invalid or refused (a version the topic already
    has or had, a killed story; the others are published), 3 Kafka down or did not confirm
    in time.
    """
    settings: Settings = ctx.find_root().obj
    ending = [(i, t) for i, t in ((kill_id, "killed"), (withdraw_id, "withdrawn")) if i]
    if len(ending) + bool(files) != 1:
        raise click.UsageError("give FILES, or one of --kill / --withdraw with --reason")
    if article_id and (ending or len(files) != 1):
        raise click.UsageError("--article-id applies to a single HTML page")
    if ending and not reason:
        raise click.UsageError("--reason is required with --kill and --withdraw")
    if update and not files:
        raise click.UsageError("--update applies to FILES")
    if subjects and not files:
        raise click.UsageError("--subject applies to FILES")

    try:
        if ending:
            target, event_type = ending[0]
            invalid = 0
            try:
                names, results = [target], publish(settings, [end_of_article(settings, target, reason, event_type)])
            except ArticleError as exc:
                _report_invalid(target, exc)
                sys.exit(EXIT_INVALID)
            except ArticleNotFound as exc:
                click.echo(f"{target}: {exc}", err=True)
                sys.exit(EXIT_INVALID)
        else:
            lookups = ArticleLogs(settings)  # the look-ups of --update and of publish_once share one reader
            try:
                with _lookups(settings, lookups) if update else nullcontext() as articles:
                    loaded, invalid = _load_all(settings, files, article_id,
                                                next_versions(settings, articles) if update else None, subjects)
                outcomes = iter(publish_once(settings, [s for _, s in loaded if isinstance(s, Submission)],
                                             lookups=lookups))
            finally:
                lookups.close()
            names = [str(path) for path, _ in loaded]
            results = [s if isinstance(s, Refused) else next(outcomes) for _, s in loaded]
    except KafkaUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_KAFKA)
    published = 0
    for name, result in zip(names, results):
        if isinstance(result, Refused):
            invalid += 1
            click.echo(f"{name}: refused\n  {result.error}", err=True)
        else:
            published += 1
            click.echo(f"{name}\t{result.line()}")
    if invalid:
        click.echo(f"{invalid} of {invalid + published} files rejected; {published} published", err=True)
        sys.exit(EXIT_INVALID)
