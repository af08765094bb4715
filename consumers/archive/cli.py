"""``newswire archive``: run the archive consumer, read events back, list, verify."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Callable

import click

from newswire.codec import ArticleEvent
from newswire.formats import registry as formats
from newswire.rows import emit, json_option, summary
from newswire.timespec import Instant, to_ms

from .archiver import INSTANCE_ID, ArchiveBusy, default_root, event_loop, leave_group
from .reader import ArchiveReader, NotArchived
from .segments import SegmentDamaged


def _settings(ctx: click.Context):
    return ctx.find_root().obj


def _root(ctx: click.Context, root: Path | None) -> Path:
    return root or default_root(_settings(ctx))


root_option = click.option("--root", type=click.Path(path_type=Path), envvar="NEWSWIRE_ARCHIVE_ROOT",
                           help="Archive directory (default: <NEWSWIRE_HOME>/archive).")


@click.group("archive")
def archive() -> None:
    """The archive: every event stored once, durably, in Avro files indexed by article."""


@archive.command("run")
@root_option
@click.option("--idle-stop", type=float, default=None, help="Stop after this many seconds without events.")
@click.option("--instance-id", default=INSTANCE_ID, show_default=True, envvar="NEWSWIRE_ARCHIVE_INSTANCE",
              help="Static group member id (one writer per archive root).")
@click.pass_context
def run(ctx: click.Context, root: Path | None, idle_stop: float | None, instance_id: str) -> None:
    """Consume the articles topic (group newswire-archive) into the archive until stopped."""
    try:
        loop, archiver = event_loop(_settings(ctx), _root(ctx, root), instance_id=instance_id)
    except ArchiveBusy as exc:
        raise click.ClickException(str(exc)) from exc
    loop.stop_on_signals()
    try:
        loop.run(idle_stop_s=idle_stop)
    finally:
        archiver.close()
    if instance_id:
        leave_group(_settings(ctx), instance_id, loop.group_id)
    click.echo(f"archived {archiver.archived} events, skipped {archiver.duplicates} already archived")


def _reader(ctx: click.Context, root: Path | None) -> ArchiveReader:
    try:
        return ArchiveReader(_root(ctx, root))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc


def event_json(event: ArticleEvent) -> str:
    """An event as JSON: datetimes and dates in ISO 8601, non-ASCII text as is."""
    def default(value):
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return json.dumps(event, default=default, ensure_ascii=False, indent=2)


def render(event: ArticleEvent, fmt: str, authority: Callable[[], str]) -> bytes:
    """The event in ``fmt``: json (the event itself), or the item of a format of the registry
    (newsml: a NewsML-G2 newsItem, ninjs, ...) with ids minted by ``authority()`` (asked only then)."""
    if fmt == "json":
        return (event_json(event) + "\n").encode()
    try:
        return formats.FORMATS[fmt].item(event, authority())
    except ValueError as exc:
        raise click.ClickException(f"article {event['article_id']} cannot be rendered as {fmt}: {exc}") from exc


@archive.command("get")
@click.argument("article_id")
@click.option("--version", type=int, default=None, help="Version to show (default: the latest archived).")
@click.option("--format", "fmt", type=click.Choice(["json", *formats.FORMATS]), default="json", show_default=True,
              help="json: the archived event itself; otherwise the item in that format.")
@root_option
@click.pass_context
def get(ctx: click.Context, article_id: str, version: int | None, fmt: str, root: Path | None) -> None:
    """Print one archived version of an article."""
    with _reader(ctx, root) as reader:
        try:
            event = reader.get(article_id, version)
        except NotArchived as exc:
            raise click.ClickException(str(exc)) from exc
        except SegmentDamaged as exc:
            raise click.ClickException(f"damaged archive file {exc}") from exc
    sys.stdout.buffer.write(render(event, fmt, _settings(ctx).authority))


#: the columns of `archive list`
LIST_COLUMNS = ("published", "article_id", "version", "event_type", "event_id", "categories")


@archive.command("list")
@click.option("--since", type=Instant(), default=None, help="Published at or after (ISO time or 7d, 12h).")
@click.option("--until", type=Instant(), default=None, help="Published before (ISO time or duration).")
@click.option("--category", default=None, help="Only events with this category.")
@root_option
@json_option
@click.pass_context
def list_(ctx: click.Context, since: datetime | None, until: datetime | None, category: str | None,
          root: Path | None, as_json: bool) -> None:
    """List archived events by publication time (then article, version), under a header: published,
    article, version, type, event id, categories."""
    with _reader(ctx, root) as reader:
        entries = reader.entries(since_ms=since and to_ms(since), until_ms=until and to_ms(until),
                                 category=category, by_published=True)
        count = emit(({"published": entry.published.isoformat(timespec="milliseconds"), "article_id": entry.article_id,
                       "version": entry.version, "event_type": entry.event_type, "event_id": entry.event_id,
                       "categories": list(entry.categories)} for entry in entries), LIST_COLUMNS, as_json)
    click.echo(f"{count} events", err=True)


@archive.command("verify")
@root_option
@json_option
@click.pass_context
def verify(ctx: click.Context, root: Path | None, as_json: bool) -> None:
    """Check every archive file against the index; exit 1 and name each problem if any."""
    with _reader(ctx, root) as reader:
        verified, problems = reader.verify()
    if as_json:
        emit(({"path": p.path, "problem": p.what} for p in problems), ("path", "problem"), as_json)
    else:
        for problem in problems:
            click.echo(f"PROBLEM {problem}")
    summary(f"{verified} events verified, {len(problems)} problems", as_json)
    sys.exit(1 if problems else 0)
