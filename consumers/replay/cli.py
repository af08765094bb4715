"""``newswire replay`` (and its alias ``newswire partners backfill``)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import click
from kafka.errors import KafkaError
from tqdm import tqdm

from newswire import bus
from newswire.config import Settings
from newswire.consumers.archive.archiver import default_root
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.cli import partners_group
from newswire.rows import emit, json_option, summary
from newswire.timespec import Instant, parse_instant, to_ms

from . import groups
from .checkpoint import Checkpoint
from .missed import missed
from .readahead import ReadAhead, ReadAheadFailed
from .runner import replay as run_replay
from .sources import ArchiveSource, KafkaSource
from .sender import PartnerSender, SendRefused, SenderFailed
from .targets import PartnerTarget
from .window import Window, kafka_ranges


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


def _window_options(f):
    f = click.option("--until", type=Instant(keep_text=True),
                     help="Replay events published before this (ISO time or duration back from now).")(f)
    f = click.option("--since", type=Instant(keep_text=True),
                     help="Replay events published at or after this (ISO time, or 7d, 12h, 30m back from now).")(f)
    return f


def _window(since: str | None, until: str | None) -> Window:
    try:
        return Window.of(since and parse_instant(since), until and parse_instant(until))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from exc


def _partner_options(f):
    for option in reversed([
        click.option("--source", type=click.Choice(["kafka", "archive"]), default="kafka", show_default=True,
                     help="Read the events from Kafka or from the archive (for events Kafka no longer holds)."),
        click.option("--archive-root", type=click.Path(path_type=Path), envvar="NEWSWIRE_ARCHIVE_ROOT",
                     help="Archive directory for --source archive (default: <NEWSWIRE_HOME>/archive)."),
        click.option("--dry-run", is_flag=True, help="Show what would be replayed, per target and partition; change nothing."),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="At most N events per second."),
        click.option("--restart", is_flag=True, help="Ignore a checkpoint of an interrupted run of the same replay."),
        click.option("--missed-only", is_flag=True,
                     help="Send only events the partner never got (none again): to catch up a partner "
                          "that was disabled."),
        click.option("--send/--no-send", default=False, show_default=True,
                     help="Deliver to the partner from this process, as its one sender (refused while a "
                          "pusher sends for it); by default the running pusher delivers what the replay queued."),
        click.option("--progress/--no-progress", default=None,
                     help="Show a progress bar on stderr (default: when stderr is a terminal)."),
        json_option,
    ]):
        f = option(f)
    return f


@click.command("replay")
@_window_options
@click.option("--group", help="Reset this consumer group (e.g. newswire-feeds) to the start of the window.")
@click.option("--partner", help="Replay the window to this partner only, through its delivery path.")
@click.option("--execute", is_flag=True,
              help="Reset the group (--group); without it its plan is shown and nothing changes.")
@_partner_options
@click.pass_context
def replay(ctx: click.Context, since: str | None, until: str | None, group: str | None,
           partner: str | None, execute: bool, **options) -> None:
    """Replay a window of the articles topic to one consumer group or one partner.

    \b
    newswire replay --group newswire-feeds --since 2026-11-20T00:00Z
    newswire replay --group newswire-feeds --since 2026-11-20T00:00Z --execute
    newswire replay --partner acme --since 7d --until 1d --rate 50 --send
    newswire replay --partner acme --since 400d --source archive

    A group target shows the reset of the group's committed offsets, per partition, and with
    --execute makes it (refused while the group has members); its consumers then re-read from
    there. A group the broker does not know is refused. A partner target reads the window with a
    temporary reader of its own, so no consumer group's offsets move, and queues the events
    in that partner's delivery outbox with their original event ids as webhook-ids.
    Interrupted, a partner replay resumes from its checkpoint when run again.
    """
    if bool(group) == bool(partner):
        raise click.UsageError("give exactly one target: --group GROUP or --partner PARTNER")
    if execute and (partner or options["dry_run"]):
        raise click.UsageError("--execute resets a --group, and not with --dry-run (a partner replay runs "
                               "unless --dry-run)")
    settings = _settings(ctx)
    if group:
        _reset_group(settings, group, _window(since, until), options["source"], execute, options["as_json"])
    else:
        _replay_to_partner(settings, partner, since, until, **options)


def _reset_group(settings: Settings, group: str, window: Window, source: str, execute: bool,
                 as_json: bool) -> None:
    if source != "kafka":
        raise click.UsageError("a consumer group reads Kafka: --source archive needs --partner "
                               "(to rebuild the archive itself, reset newswire-archive)")
    if window.until_ms is not None:
        raise click.UsageError("a group reset only moves where the group starts: --until needs --partner")
    reader = bus.consumer(settings, None, client_id="newswire-replay")
    try:
        ranges = kafka_ranges(reader, settings.topics.articles, window, settings.topic_wait_s)
        ends = {tp.partition: end for tp, end in bus.end_offsets(reader, settings.topics.articles).items()}
    finally:
        reader.close()
    state, active = groups.members(settings, group)
    try:
        groups.check_known(settings, group, state)
    except groups.UnknownGroup as exc:
        raise click.ClickException(str(exc)) from exc
    moves = groups.plan(settings, group, settings.topics.articles, ranges, ends)
    if as_json:
        emit(groups.plan_rows(moves), groups.PLAN_COLUMNS, as_json)
    else:
        for line in groups.table(moves):
            click.echo(line)
    total = sum(m.to_replay for m in moves)
    if not execute:
        summary(f"plan: group {group} (state {state}, {len(active)} active members) would re-read "
                f"{total} events; nothing changed (--execute resets it)", as_json)
        return
    try:
        groups.apply(settings, moves)
    except groups.GroupActive as exc:
        raise click.ClickException(f"refused: {exc}") from exc
    summary(f"group {group} reset: its consumers will re-read {total} events", as_json)


def _replay_to_partner(settings: Settings, partner: str, since: str | None, until: str | None, *, source: str,
                       archive_root: Path | None, dry_run: bool, rate: float | None, restart: bool, send: bool,
                       progress: bool | None, missed_only: bool, as_json: bool) -> None:
    progress = sys.stderr.isatty() if progress is None else progress
    params = {"source": source, "target": f"partner:{partner}", "topic": settings.topics.articles,
              "since": since, "until": until, **({"missed_only": True} if missed_only else {})}
    checkpoint = Checkpoint.open(settings.home, params, restart=restart)
    if checkpoint.resumed:
        window = Window(*checkpoint.window)
        click.echo(f"resuming from checkpoint {checkpoint.path}", err=True)
    else:
        window = _window(since, until)
        checkpoint.window = (window.since_ms, window.until_ms)
    try:
        target = PartnerTarget(settings, partner, dry_run=dry_run, missed_only=missed_only)
    except registry.UnknownPartner as exc:
        raise click.ClickException(f"{exc} (see `newswire partners list`)") from exc
    try:  # the partner's one sender, or refused before anything is queued
        sender = PartnerSender(settings, partner) if send and not dry_run else None
    except SendRefused as exc:
        target.close()
        raise click.ClickException(f"refused --send: {exc}; it delivers what the replay queues: run the replay "
                                   f"without --send") from exc
    # read, decoded and rendered in a process of its own, a few batches ahead (see .readahead)
    if source == "archive":
        try:
            events = ReadAhead(partial(ArchiveSource, settings, window, archive_root or default_root(settings)),
                               target.prerender)
        except FileNotFoundError as exc:
            if sender:
                sender.stop()
            target.close()
            raise click.ClickException(str(exc)) from exc
    else:
        events = ReadAhead(partial(KafkaSource, settings, window), target.prerender)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        target.endings = events.endings()  # the state of each article now, not in the window
        result = run_replay(events, target, checkpoint, dry_run=dry_run, rate=rate, progress=progress,
                            stop=stop, after_commit=sender.wake if sender else None)
        undelivered = _wait_delivered(target, sender, stop, progress) if sender else 0
    except ReadAheadFailed as exc:  # what was committed before stays: the same command resumes after it
        raise click.ClickException(f"{exc}; run the same command again to resume from the checkpoint") from exc
    finally:
        if sender:
            sender.stop()
        events.close()
        target.close()
    if as_json:
        emit(result.rows(), ("partition", "events", "outcomes"), as_json)
    for line in result.lines():
        summary(line, as_json)
    for problem in getattr(events, "problems", []):
        summary(f"PROBLEM {problem}", as_json)
    if undelivered or (not dry_run and not send and result.outcomes().get("queued", 0)
                       + result.outcomes().get("re-sent", 0)):
        summary(f"{undelivered or 'the queued'} deliveries are pending: the pusher (or a later --send) delivers "
                f"them; `newswire deliveries gaps --partner {partner}` shows them", as_json)
    if result.interrupted:
        sys.exit(130)


def _wait_delivered(target: PartnerTarget, sender: PartnerSender, stop: threading.Event, progress: bool) -> int:
    """Wait until the deliveries this replay queued are no longer pending (or the replay is
    stopped, or its sender failed: ClickException); return how many are still pending."""
    total = len(target.queued_ids)
    with tqdm(total=total, unit="delivery", desc=f"delivering to {target.partner.id}", disable=not progress,
              dynamic_ncols=True, mininterval=0.5) as bar:
        while not stop.is_set():
            done = total - target.pending(target.queued_ids)
            bar.update(done - bar.n)
            if done >= total:
                return 0
            try:
                sender.check()
            except SenderFailed as exc:
                raise click.ClickException(f"{exc}; {total - done} deliveries are pending: the pusher (or a later "
                                           f"--send) delivers them") from exc
            time.sleep(0.2)
    return target.pending(target.queued_ids)


@click.command("backfill")
@click.argument("partner")
@_window_options
@_partner_options
@click.pass_context
def backfill(ctx: click.Context, partner: str, since: str | None, until: str | None, **options) -> None:
    """Send PARTNER the events of a window (a new partner, or one that lost a day).

    The same as `newswire replay --partner PARTNER`, e.g. `newswire partners backfill acme --since 7d`.
    """
    ctx.invoke(replay, since=since, until=until, group=None, partner=partner, **options)


@click.command("enable")
@click.argument("partner")
@click.option("--backfill", "catch_up", is_flag=True,
              help="Also queue what it missed while disabled (the backfill the command prints).")
@click.pass_context
def enable(ctx: click.Context, partner: str, catch_up: bool) -> None:
    """Push to a partner again, starting with what was held; say what it missed while disabled.

    Stories published while a partner is disabled are not queued for it (only the kills and
    corrections of stories it has are held). By default this prints how many events it
    missed, from when to when, and the exact backfill command; with --backfill it runs it
    (only events it never got, and nothing of a story killed or withdrawn since).
    """
    settings = _settings(ctx)
    db = store.connect(settings)
    try:
        was = registry.enable(db, partner)
    except registry.UnknownPartner as exc:
        raise click.ClickException(f"{exc} (see `newswire partners list`)") from exc
    finally:
        db.close()
    if was.enabled:
        click.echo(f"{partner}: already enabled")
        return
    click.echo(f"{partner}: enabled (it was disabled: {was.disabled_reason or 'by an operator'})")
    if was.disabled_at is None:  # a state file from before disabled_at was kept
        click.echo(f"{partner}: when it was disabled is not known; `newswire partners backfill {partner} "
                   f"--since TIME --missed-only --dry-run` shows what it missed since TIME")
        return
    since = iso_ms(was.disabled_at)
    try:
        found = missed(settings, partner, to_ms(parse_instant(since)))
    except KafkaError as exc:
        message = (f"{partner}: could not count what it missed since {since}: Kafka: {exc}; "
                   f"`newswire partners backfill {partner} --since {since} --missed-only` sends it")
        if catch_up:
            raise click.ClickException(message) from exc
        click.echo(message)
        return
    if not found.events:
        click.echo(f"{partner}: missed nothing while disabled (since {since})"
                   + (f"; {found.withheld} events of stories killed or withdrawn since are not sent"
                      if found.withheld else ""))
        return
    first, last = (iso_ms(ms / 1000) for ms in (found.first_ms, found.last_ms))
    command = f"newswire partners backfill {partner} --since {since} --missed-only"
    click.echo(f"{partner}: MISSED {found.events} events ({found.stories} stories) published while disabled, "
               f"from {first} to {last}" + (f"; {found.withheld} more of stories killed or withdrawn since are "
                                            f"not sent" if found.withheld else ""))
    if not catch_up:
        click.echo(f"{partner}: to send them: {command}  (or `newswire partners enable {partner} --backfill` "
                   f"next time)")
        return
    click.echo(f"{partner}: backfilling: {command}")
    ctx.invoke(backfill, partner=partner, since=since, until=None, source="kafka", archive_root=None,
               dry_run=False, rate=None, restart=False, send=False, progress=False, missed_only=True,
               as_json=False)


def iso_ms(epoch_s: float) -> str:
    """An epoch time as ISO 8601 UTC to the millisecond, as ``--since`` takes it."""
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ``newswire partners`` is the webhooks part's group; the backfill alias and enable (which
# reports what a disabled partner missed, with the replay's decisions) live with it.
partners_group.add_command(backfill)
partners_group.add_command(enable)
