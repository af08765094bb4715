"""``newswire partners``, ``newswire deliveries`` and ``newswire webhooks``: the partner push
as operators run it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from typing import Iterator

import click

from newswire.config import Settings
from newswire.consumers.webhooks import outbox, receipts, ssrf, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig, parse_cidrs
from newswire.consumers.webhooks.filters import EVENT_TYPES, Subscription
from newswire.consumers.webhooks.partners import FORMATS, Partner
from newswire.consumers.webhooks.signing import new_secret


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings.from_env()


@contextlib.contextmanager
def _db(ctx: click.Context) -> Iterator[sqlite3.Connection]:
    db = store.connect(_settings(ctx))
    try:
        yield db
    except (ValueError, LookupError, ssrf.EndpointRefused) as exc:
        raise click.ClickException(str(exc.args[0]) if exc.args else str(exc)) from exc
    finally:
        db.close()


def _csv(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(p.strip() for p in text.split(",") if p.strip())


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _subscription_options(f):
    for option in reversed([
        click.option("--categories", help="Comma-separated categories (any in common); '' = all."),
        click.option("--languages", help="Comma-separated BCP 47 languages (en also takes en-GB); '' = all."),
        click.option("--max-urgency", type=click.IntRange(0, 9),
                     help="Only urgency 1 (flash) .. N; 0 = no limit."),
        click.option("--event-types", help=f"Comma-separated of {', '.join(EVENT_TYPES)}; '' = all."),
        click.option("--embargoed/--no-embargoed", default=None,
                     help="Entitled to embargoed stories before the embargo lifts (others get them when it does)."),
        click.option("--concurrency", type=click.IntRange(1, 256), help="Requests in flight at once (default 4)."),
        click.option("--rate-limit", type=click.FloatRange(0), help="Requests per second, 0 = unlimited (default)."),
        click.option("--allow-cidrs", help="Comma-separated networks this endpoint may be on although private "
                                           "(added to NEWSWIRE_WEBHOOK_ALLOW_CIDRS)."),
    ]):
        f = option(f)
    return f


def _changes(old: Subscription, categories, languages, max_urgency, event_types, embargoed, concurrency,
             rate_limit, allow_cidrs) -> dict:
    sub = Subscription(
        categories=old.categories if categories is None else _csv(categories),
        languages=old.languages if languages is None else _csv(languages),
        max_urgency=old.max_urgency if max_urgency is None else (max_urgency or None),
        event_types=old.event_types if event_types is None else _csv(event_types),
        embargoed=old.embargoed if embargoed is None else embargoed)
    changes: dict = {"subscription": sub}
    if concurrency is not None:
        changes["concurrency"] = concurrency
    if rate_limit is not None:
        changes["rate_limit"] = rate_limit
    if allow_cidrs is not None:
        changes["allow_cidrs"] = parse_cidrs(allow_cidrs)
    return changes


def _known(db: sqlite3.Connection, partner_id: str | None) -> None:
    """Raise :class:`~.partners.UnknownPartner` (exit 1, one line) for a --partner that is not registered."""
    if partner_id is not None:
        registry.get(db, partner_id)


def _show(partner: Partner, *, secrets: bool, db: sqlite3.Connection) -> None:
    next_seq = db.execute("SELECT next_seq FROM partners WHERE id = ?", (partner.id,)).fetchone()[0]
    state = "enabled" if partner.enabled else f"DISABLED ({partner.disabled_reason or 'by an operator'})"
    click.echo(f"id:            {partner.id}\nname:          {partner.name}\nurl:           {partner.url}\n"
               f"format:        {partner.format} ({partner.content_type})\nstate:         {state}\n"
               f"subscription:  {partner.subscription.describe()}\n"
               f"limits:        concurrency={partner.concurrency} rate_limit="
               f"{partner.rate_limit or 'unlimited'}{'/s' if partner.rate_limit else ''}\n"
               f"allow_cidrs:   {','.join(map(str, partner.allow_cidrs)) or '-'}\n"
               f"last seq:      {next_seq - 1}")
    for n, secret in enumerate(partner.secrets):
        label = "secret:" if n == 0 else "old secret:"
        click.echo(f"{label:<15}{secret if secrets else secret[:10] + '…'}")


# --- partners --------------------------------------------------------------------------------

@click.group("partners")
def partners_group() -> None:
    """The partner registry: who gets pushes, where, in which format, signed with what."""


@partners_group.command("add")
@click.argument("partner_id")
@click.option("--name", required=True, help="The partner's name.")
@click.option("--url", required=True, help="Its webhook endpoint (https://...), or file:///dir for a drop folder.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="ninjs", show_default=True)
@click.option("--secret", help="Signing secret in whsec_ form (default: a new random one, printed).")
@click.option("--disabled", is_flag=True, help="Register it disabled.")
@_subscription_options
@click.pass_context
def partners_add(ctx, partner_id, name, url, fmt, secret, disabled, **options) -> None:
    """Register a partner (its endpoint is checked by the SSRF guard)."""
    with _db(ctx) as db:
        partner = Partner(id=partner_id, name=name, url=url, format=fmt, enabled=not disabled,
                          disabled_reason="registered disabled" if disabled else None,
                          secrets=(secret or new_secret(),), **_changes(Subscription(), **options))
        partner = registry.add(db, partner, allow=WebhookConfig.from_env().allow_cidrs)
        _show(partner, secrets=True, db=db)


@partners_group.command("list")
@click.pass_context
def partners_list(ctx) -> None:
    """One line per partner: state, format, endpoint, deliveries pending/delivered/dead."""
    with _db(ctx) as db:
        counts = {row["id"]: row for row in receipts.summary(db)}
        click.echo("id\tstate\tformat\tpending\tdelivered\tdead\tlast_seq\turl")
        for p in registry.all_partners(db):
            c = counts[p.id]
            click.echo(f"{p.id}\t{'enabled' if p.enabled else 'DISABLED'}\t{p.format}\t{c['pending'] or 0}\t"
                       f"{c['delivered'] or 0}\t{c['dead'] or 0}\t{c['last_seq']}\t{p.url}")


@partners_group.command("show")
@click.argument("partner_id")
@click.option("--secrets", is_flag=True, help="Print the signing secrets in full.")
@click.pass_context
def partners_show(ctx, partner_id, secrets) -> None:
    """Everything about one partner."""
    with _db(ctx) as db:
        _show(registry.get(db, partner_id), secrets=secrets, db=db)


@partners_group.command("update")
@click.argument("partner_id")
@click.option("--name")
@click.option("--url")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)))
@_subscription_options
@click.pass_context
def partners_update(ctx, partner_id, name, url, fmt, **options) -> None:
    """Change a partner; options not given keep their value ('' clears a list)."""
    with _db(ctx) as db:
        old = registry.get(db, partner_id)
        changes = _changes(old.subscription, **options)
        changes.update({k: v for k, v in (("name", name), ("url", url), ("format", fmt)) if v is not None})
        partner = registry.update(db, partner_id, allow=WebhookConfig.from_env().allow_cidrs, **changes)
        _show(partner, secrets=False, db=db)


@partners_group.command("disable")
@click.argument("partner_id")
@click.option("--reason", default="disabled by an operator", show_default=True)
@click.pass_context
def partners_disable(ctx, partner_id, reason) -> None:
    """Stop pushing to a partner; its pending deliveries (and kills of stories it has) are held.

    Stories published while it is disabled are not queued for it: `newswire partners enable`
    says how many it missed and how to backfill them (`--backfill` does it).
    """
    with _db(ctx) as db:
        partner = registry.disable(db, partner_id, reason)
        click.echo(f"{partner_id}: disabled ({reason}) since {_when(partner.disabled_at)}\n"
                   f"{partner_id}: its pending deliveries, and the kills and corrections of stories it has, are "
                   f"held until it is enabled; stories published meanwhile are NOT queued for it: "
                   f"`newswire partners enable {partner_id}` reports what it missed, `--backfill` sends it")


@partners_group.command("rotate-secret")
@click.argument("partner_id")
@click.option("--secret", help="The new secret in whsec_ form (default: a new random one).")
@click.option("--drop-old", is_flag=True, help="End the rotation: only the current secret signs.")
@click.pass_context
def partners_rotate(ctx, partner_id, secret, drop_old) -> None:
    """Rotate the signing secret: the new one signs beside the old one until --drop-old."""
    with _db(ctx) as db:
        partner = registry.rotate_secret(db, partner_id, new_secret=secret, drop_old=drop_old)
        if drop_old:
            click.echo(f"{partner_id}: signing with the current secret only")
        else:
            click.echo(f"{partner_id}: new secret {partner.secrets[0]}\n"
                       f"{partner_id}: both secrets sign until `newswire partners rotate-secret {partner_id} --drop-old`")


# --- deliveries ------------------------------------------------------------------------------

@click.group("deliveries")
def deliveries_group() -> None:
    """Receipts of every attempt, the kill report, redrive and resend."""


@deliveries_group.command("list")
@click.option("--partner", "partner_id", help="Only this partner.")
@click.option("--status", type=click.Choice(["delivered", "failed", "retry", "throttled", "dead", "gone"]),
              help="delivered, failed (any other outcome), or one outcome.")
@click.option("--since", "since_text", help="Only attempts since: 1h, 30m, 2d, or an ISO 8601 time.")
@click.option("--article", "article_id", help="Only this article.")
@click.option("--limit", default=100, show_default=True)
@click.pass_context
def deliveries_list(ctx, partner_id, status, since_text, article_id, limit) -> None:
    """Attempts (receipts), newest first."""
    with _db(ctx) as db:
        _known(db, partner_id)
        rows = receipts.attempts(db, partner_id=partner_id, status=status, article_id=article_id, limit=limit,
                                 since_at=receipts.since(since_text) if since_text else None)
        click.echo("at\tpartner\tarticle\tversion\tseq\tevent_id\tattempt\toutcome\tstatus\tms\tnext_attempt\terror")
        for r in rows:
            click.echo(f"{_when(r['at'])}\t{r['partner_id']}\t{r['article_id']}\t{r['version']}\t{r['seq']}\t"
                       f"{r['event_id']}\t{r['attempt']}\t{r['outcome']}\t{r['status_code'] or '-'}\t"
                       f"{r['duration_ms']:.0f}\t{_when(r['next_attempt_at'])}\t{r['error'] or ''}")


@deliveries_group.command("status")
@click.pass_context
def deliveries_status(ctx) -> None:
    """Per partner: deliveries pending, delivered and dead, and the oldest pending one."""
    with _db(ctx) as db:
        click.echo("partner\tstate\tpending\tdelivered\tdead\tlast_seq\toldest_pending")
        for r in receipts.summary(db):
            click.echo(f"{r['id']}\t{'enabled' if r['enabled'] else 'DISABLED'}\t{r['pending'] or 0}\t"
                       f"{r['delivered'] or 0}\t{r['dead'] or 0}\t{r['last_seq']}\t{_when(r['oldest'])}")


@deliveries_group.command("kills")
@click.option("--partner", "partner_id", help="Only this partner.")
@click.pass_context
def deliveries_kills(ctx, partner_id) -> None:
    """The kill report: per partner that had a killed story, whether the kill reached it."""
    with _db(ctx) as db:
        _known(db, partner_id)
        rows = receipts.kill_report(db, partner_id=partner_id)
        click.echo("partner\tarticle\tversion\tseq\tdelivered\tstatus\ttries\tdelivered_at\tlast_error")
        for r in rows:
            click.echo(f"{r['partner_id']}\t{r['article_id']}\t{r['version']}\t{r['seq']}\t"
                       f"{'YES' if r['status'] == 'delivered' else 'NO'}\t{r['status']}\t{r['tries']}\t"
                       f"{_when(r['delivered_at'])}\t{r['last_error'] or ''}")
        undelivered = sum(r["status"] != "delivered" for r in rows)
        click.echo(f"{len(rows)} kill deliveries, {undelivered} not delivered")


@deliveries_group.command("redrive")
@click.option("--partner", "partner_id", help="Only this partner's dead deliveries.")
@click.option("--id", "ids", multiple=True, type=int, help="Only these deliveries (repeatable).")
@click.pass_context
def deliveries_redrive(ctx, partner_id, ids) -> None:
    """Send dead deliveries again with a fresh retry budget (a running pusher picks them up)."""
    with _db(ctx) as db:
        _known(db, partner_id)
        result = outbox.redrive(db, partner_id=partner_id, ids=ids)
        click.echo(f"redriven: {len(result.redriven)}")
        if result.superseded:
            click.echo(f"left dead, a newer version already reached the partner: {len(result.superseded)} "
                       f"(ids {', '.join(map(str, result.superseded))})")
        unknown = sorted(set(ids) - set(result.redriven) - set(result.superseded))
        if unknown:
            raise click.ClickException(
                f"no dead deliveries{f' of partner {partner_id}' if partner_id else ''} with id "
                f"{', '.join(map(str, unknown))} (`newswire deliveries list --status dead` shows them)")


@deliveries_group.command("resend")
@click.option("--partner", "partner_id", required=True)
@click.option("--seq", "seq_range", required=True, help="A sequence number or a range, e.g. 120-135.")
@click.pass_context
def deliveries_resend(ctx, partner_id, seq_range) -> None:
    """Send deliveries again with their original sequence numbers and webhook-ids."""
    with _db(ctx) as db:
        partner = registry.get(db, partner_id)
        low, high = receipts.parse_seq_range(seq_range)
        seqs = receipts.resend(db, partner_id, low, high)
        if not seqs:
            last = db.execute("SELECT next_seq - 1 FROM partners WHERE id = ?", (partner_id,)).fetchone()[0]
            raise click.ClickException(f"{partner_id} has no deliveries numbered {low}-{high} "
                                       f"({f'its numbers are 1-{last}' if last else 'it has none yet'})")
        click.echo(f"{partner_id}: resending {len(seqs)} deliveries ({low}-{high})")
        for line in _held_up(db, partner):
            click.echo(line)


def _held_up(db: sqlite3.Connection, partner: Partner) -> list[str]:
    """Why the pusher will not send to this partner right now (disabled, circuit open), if it will not."""
    lines = []
    if not partner.enabled:
        lines.append(f"{partner.id}: DISABLED ({partner.disabled_reason or 'by an operator'}): nothing is sent "
                     f"until `newswire partners enable {partner.id}`")
    config = WebhookConfig.from_env()
    failing = receipts.failing(db, partner.id)
    if failing and failing.failures >= config.breaker_failures:
        lines.append(f"{partner.id}: its circuit is OPEN ({failing.failures} failed attempts in a row, the last at "
                     f"{_when(failing.last_at)}): the resend waits for the circuit; the pusher sends one probe "
                     f"from {_when(failing.last_at + config.breaker_cooldown_s)} and the rest once one gets through")
    return lines


@deliveries_group.command("gaps")
@click.option("--partner", "partner_id", required=True)
@click.pass_context
def deliveries_gaps(ctx, partner_id) -> None:
    """Sequence numbers assigned to a partner but not acknowledged (yet)."""
    with _db(ctx) as db:
        registry.get(db, partner_id)
        rows = receipts.gaps(db, partner_id)
        click.echo("seq\tarticle\tversion\tevent_type\tstatus\ttries\tlast_error")
        for r in rows:
            click.echo(f"{r['seq']}\t{r['article_id']}\t{r['version']}\t{r['event_type']}\t{r['status']}\t"
                       f"{r['tries']}\t{r['last_error'] or ''}")
        click.echo(f"{len(rows)} unacknowledged")


# --- the pusher ------------------------------------------------------------------------------

@click.group("webhooks")
def webhooks_group() -> None:
    """The partner pusher and a demo partner endpoint."""


@webhooks_group.command("run")
@click.pass_context
def webhooks_run(ctx) -> None:
    """Push article events to partners (consumer group newswire-webhooks) until SIGTERM/Ctrl-C.

    Retry schedule, timeout, circuit breaker and SSRF allowlist come from NEWSWIRE_WEBHOOK_*
    (see docs/webhooks.md)."""
    from newswire.consumers.webhooks import pusher
    try:
        config = WebhookConfig.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        asyncio.run(pusher.serve(_settings(ctx), config))
    except pusher.PusherBusy as exc:
        raise click.ClickException(str(exc)) from exc
    except pusher.PusherFailed as exc:  # logged in full (kafka_loop_failed); a supervisor restarts it
        raise click.ClickException(f"the pusher stopped: {exc}") from exc


@webhooks_group.command("demo-partner")
@click.option("--port", default=8090, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--secret", required=True, help="The partner's whsec_ secret (newswire partners show ID --secrets).")
def webhooks_demo_partner(port, host, secret) -> None:
    """A partner endpoint that verifies each push's signature and prints what it received."""
    from newswire.consumers.webhooks import demo_partner
    demo_partner.serve(host, port, secret)


COMMANDS = (partners_group, deliveries_group, webhooks_group)
