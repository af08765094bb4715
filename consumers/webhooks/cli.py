"""``newswire partners``, ``newswire deliveries`` and ``newswire webhooks``: the partner push
as operators run it."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import click

from newswire import loop_thread
from newswire.config import Settings
from newswire.rows import cell, emit, iso, json_option, summary
from newswire.timespec import Instant, parse_duration
from newswire.consumers.webhooks import ordering, outbox, partner_state, pull, receipts, ssrf, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig, parse_cidrs
from newswire.consumers.webhooks.dialect import Db
from newswire.consumers.webhooks.filters import EVENT_TYPES, Subscription
from newswire.consumers.webhooks.partners import FORMATS, MODES, ORDERINGS, Partner
from newswire.consumers.webhooks.signing import new_secret


def cli_settings(ctx: click.Context) -> Settings:
    """The settings the ``newswire`` group was given (or the environment's)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings.from_env()


@contextlib.contextmanager
def open_state(ctx: click.Context) -> Iterator[Db]:
    """The webhook state for one command; what it refuses (unknown partner, bad value) is one line, exit 1."""
    db = store.connect(cli_settings(ctx))
    try:
        yield db
    except (ValueError, LookupError, ssrf.EndpointRefused) as exc:
        raise click.ClickException(str(exc.args[0]) if exc.args else str(exc)) from exc
    finally:
        db.close()


def _csv(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(p.strip() for p in text.split(",") if p.strip())


def _when(epoch: float | None) -> str:
    return cell(iso(epoch))


def _state(enabled: bool) -> str:
    return "enabled" if enabled else "DISABLED"


class SeqRange(click.ParamType):
    """``--seq``: a sequence number or a range (``120-135``); anything else is a usage error (exit 2)."""

    name = "SEQ"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return receipts.parse_seq_range(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


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
        click.option("--mode", type=click.Choice(MODES),
                     help="push: the pusher sends its deliveries (default); pull: it fetches them (GET /v1/changes), "
                          "from the same sequence numbers."),
        click.option("--ordering", type=click.Choice(ORDERINGS),
                     help="article: in order per story (default); strict: one at a time by sequence number, "
                          "nothing passing a delivery being retried or dead."),
    ]):
        f = option(f)
    return f


def _changes(old: Subscription, categories, languages, max_urgency, event_types, embargoed, concurrency,
             rate_limit, allow_cidrs, mode, ordering) -> dict:
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
    changes.update({k: v for k, v in (("mode", mode), ("ordering", ordering)) if v is not None})
    return changes


def known_partner(db: Db, partner_id: str | None) -> None:
    """Raise :class:`~.partners.UnknownPartner` (exit 1, one line) for a --partner that is not registered."""
    if partner_id is not None:
        registry.get(db, partner_id)


def _last_seq(db: Db, partner_id: str) -> int:
    return db.execute("SELECT next_seq - 1 FROM partners WHERE id = ?", (partner_id,)).fetchone()[0]


#: the fields of `partners show --json`
SHOW_FIELDS = ("id", "name", "url", "format", "content_type", "state", "disabled_reason", "disabled_at",
               "subscription", "concurrency", "rate_limit", "allow_cidrs", "mode", "ordering", "held", "last_seq",
               "first_unacknowledged", "secrets", "previous_secret_until")


def _shown(partner: Partner, *, secrets: bool, db: Db) -> dict:
    """One partner as `partners show --json` prints it."""
    sub = partner.subscription
    return {"id": partner.id, "name": partner.name, "url": partner.url, "format": partner.format,
            "content_type": partner.content_type, "state": _state(partner.enabled),
            "disabled_reason": partner.disabled_reason, "disabled_at": iso(partner.disabled_at),
            "subscription": {"categories": list(sub.categories or ()), "languages": list(sub.languages or ()),
                             "max_urgency": sub.max_urgency, "event_types": list(sub.event_types or ()),
                             "embargoed": sub.embargoed},
            "concurrency": partner.concurrency, "rate_limit": partner.rate_limit,
            "allow_cidrs": [str(c) for c in partner.allow_cidrs], "mode": partner.mode, "ordering": partner.ordering,
            "held": ordering.held_reason(db, partner), "last_seq": _last_seq(db, partner.id),
            "first_unacknowledged": pull.first_unacknowledged(db, partner.id),
            "secrets": [s if secrets else s[:10] + "…" for s in partner.secrets],
            "previous_secret_until": iso(partner.previous_secret_until)}


def _previous_signs(partner: Partner, now: float) -> str:
    """Until when a rotation's previous secret signs, as `partners show` says it."""
    until = partner.previous_secret_until
    if until is None:
        return f"signs until `newswire partners rotate-secret {partner.id} --drop-old`"
    return f"{'signs until' if now < until else 'no longer signs, since'} {_when(until)}"


def _show(partner: Partner, *, secrets: bool, db: Db) -> None:
    next_seq = _last_seq(db, partner.id) + 1
    state = "enabled" if partner.enabled else f"DISABLED ({partner.disabled_reason or 'by an operator'})"
    click.echo(f"id:            {partner.id}\nname:          {partner.name}\nurl:           {partner.url or '-'}\n"
               f"format:        {partner.format} ({partner.content_type})\nstate:         {state}\n"
               f"subscription:  {partner.subscription.describe()}\n"
               f"limits:        concurrency={partner.concurrency} rate_limit="
               f"{partner.rate_limit or 'unlimited'}{'/s' if partner.rate_limit else ''}\n"
               f"allow_cidrs:   {','.join(map(str, partner.allow_cidrs)) or '-'}\n"
               f"mode:          {partner.mode}, ordering {partner.ordering}\n"
               f"last seq:      {next_seq - 1} (first not acknowledged: "
               f"{cell(pull.first_unacknowledged(db, partner.id))})")
    if held := ordering.held_reason(db, partner):
        click.echo(f"HELD:          {held}")
    for n, secret in enumerate(partner.secrets):
        label = "secret:" if n == 0 else "old secret:"
        click.echo(f"{label:<15}{secret if secrets else secret[:10] + '…'}"
                   + (f" ({_previous_signs(partner, time.time())})" if n else ""))


# --- partners --------------------------------------------------------------------------------

@click.group("partners")
def partners_group() -> None:
    """The partner registry: who gets pushes, where, in which format, signed with what."""


@partners_group.command("add")
@click.argument("partner_id")
@click.option("--name", required=True, help="The partner's name.")
@click.option("--url", default="", help="Its webhook endpoint (https://...), or file:///dir for a drop folder "
                                        "(required unless --mode pull).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="ninjs", show_default=True)
@click.option("--secret", help="Signing secret in whsec_ form (default: a new random one, printed).")
@click.option("--disabled", is_flag=True, help="Register it disabled.")
@_subscription_options
@click.pass_context
def partners_add(ctx, partner_id, name, url, fmt, secret, disabled, **options) -> None:
    """Register a partner (its endpoint is checked by the SSRF guard)."""
    with open_state(ctx) as db:
        partner = Partner(id=partner_id, name=name, url=url, format=fmt, enabled=not disabled,
                          disabled_reason="registered disabled" if disabled else None,
                          secrets=(secret or new_secret(),), **_changes(Subscription(), **options))
        partner = registry.add(db, partner, allow=WebhookConfig.from_env().allow_cidrs)
        _show(partner, secrets=True, db=db)


@partners_group.command("list")
@json_option
@click.pass_context
def partners_list(ctx, as_json) -> None:
    """One line per partner: state, format, endpoint, deliveries pending/delivered/dead."""
    with open_state(ctx) as db:
        counts = {s.partner: s for s in partner_state.partner_states(db, WebhookConfig())}
        emit(({"id": p.id, "state": _state(p.enabled), "format": p.format, "pending": counts[p.id].pending,
               "delivered": counts[p.id].delivered, "dead": counts[p.id].dead,
               "last_seq": counts[p.id].last_seq, "url": p.url} for p in registry.all_partners(db)),
             ("id", "state", "format", "pending", "delivered", "dead", "last_seq", "url"), as_json)


@partners_group.command("show")
@click.argument("partner_id")
@click.option("--secrets", is_flag=True, help="Print the signing secrets in full.")
@json_option
@click.pass_context
def partners_show(ctx, partner_id, secrets, as_json) -> None:
    """Everything about one partner."""
    with open_state(ctx) as db:
        partner = registry.get(db, partner_id)
        if as_json:
            emit([_shown(partner, secrets=secrets, db=db)], SHOW_FIELDS, as_json)
        else:
            _show(partner, secrets=secrets, db=db)


@partners_group.command("update")
@click.argument("partner_id")
@click.option("--name")
@click.option("--url")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)))
@_subscription_options
@click.pass_context
def partners_update(ctx, partner_id, name, url, fmt, **options) -> None:
    """Change a partner; options not given keep their value ('' clears a list)."""
    with open_state(ctx) as db:
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
    with open_state(ctx) as db:
        partner = registry.disable(db, partner_id, reason)
        click.echo(f"{partner_id}: disabled ({reason}) since {_when(partner.disabled_at)}\n"
                   f"{partner_id}: its pending deliveries, and the kills and corrections of stories it has, are "
                   f"held until it is enabled; stories published meanwhile are NOT queued for it: "
                   f"`newswire partners enable {partner_id}` reports what it missed, `--backfill` sends it")


@partners_group.command("rotate-secret")
@click.argument("partner_id")
@click.option("--secret", help="The new secret in whsec_ form (default: a new random one).")
@click.option("--overlap", type=float, default=registry.DEFAULT_OVERLAP_S, show_default=True,
              help=f"Seconds the old secret goes on signing beside the new one (0 = not at all; at most "
                   f"{registry.MAX_OVERLAP_S:g}).")
@click.option("--drop-old", is_flag=True, help="End the rotation now: only the current secret signs.")
@click.pass_context
def partners_rotate(ctx, partner_id, secret, overlap, drop_old) -> None:
    """Rotate the signing secret: the new one signs beside the old one for --overlap seconds
    (then the old one is dropped by itself), or until --drop-old ends the rotation early."""
    with open_state(ctx) as db:
        partner = registry.rotate_secret(db, partner_id, new_secret=secret, drop_old=drop_old, overlap_s=overlap)
        if not drop_old:
            click.echo(f"{partner_id}: new secret {partner.secrets[0]}")
        if len(partner.secrets) == 1:
            click.echo(f"{partner_id}: signing with the current secret only")
        else:
            click.echo(f"{partner_id}: both secrets sign until {_when(partner.previous_secret_until)} "
                       f"(`newswire partners rotate-secret {partner_id} --drop-old` ends it sooner)")


# --- deliveries ------------------------------------------------------------------------------

@click.group("deliveries")
def deliveries_group() -> None:
    """Receipts of every attempt, the kill report, redrive and resend."""


@deliveries_group.command("list")
@click.option("--partner", "partner_id", help="Only this partner.")
@click.option("--status", type=click.Choice(["delivered", "failed", "retry", "throttled", "dead", "gone"]),
              help="delivered, failed (any other outcome), or one outcome.")
@click.option("--since", type=Instant(), help="Only attempts since: 1h, 30m, 2d, or an ISO 8601 time.")
@click.option("--article", "article_id", help="Only this article.")
@click.option("--limit", default=100, show_default=True)
@json_option
@click.pass_context
def deliveries_list(ctx, partner_id, status, since, article_id, limit, as_json) -> None:
    """Attempts (receipts), newest first."""
    with open_state(ctx) as db:
        known_partner(db, partner_id)
        rows = receipts.attempts(db, partner_id=partner_id, status=status, article_id=article_id, limit=limit,
                                 since_at=since.timestamp() if since else None)
        emit(({"at": iso(r["at"]), "partner": r["partner_id"], "article": r["article_id"], "version": r["version"],
               "seq": r["seq"], "event_id": r["event_id"], "attempt": r["attempt"], "outcome": r["outcome"],
               "status": r["status_code"], "ms": round(r["duration_ms"]), "next_attempt": iso(r["next_attempt_at"]),
               "error": r["error"]} for r in rows),
             ("at", "partner", "article", "version", "seq", "event_id", "attempt", "outcome", "status", "ms",
              "next_attempt", "error"), as_json)


@deliveries_group.command("status")
@json_option
@click.pass_context
def deliveries_status(ctx, as_json) -> None:
    """Per partner: deliveries pending, delivered and dead, and the oldest pending one."""
    with open_state(ctx) as db:
        emit(({"partner": s.partner, "state": _state(s.enabled), "pending": s.pending, "delivered": s.delivered,
               "dead": s.dead, "last_seq": s.last_seq, "oldest_pending": iso(s.oldest_pending_at)}
              for s in partner_state.partner_states(db, WebhookConfig())),
             ("partner", "state", "pending", "delivered", "dead", "last_seq", "oldest_pending"), as_json)


@deliveries_group.command("kills")
@click.option("--partner", "partner_id", help="Only this partner.")
@json_option
@click.pass_context
def deliveries_kills(ctx, partner_id, as_json) -> None:
    """The kill report: per partner that had a killed story, whether the kill reached it."""
    with open_state(ctx) as db:
        known_partner(db, partner_id)
        rows = receipts.kill_report(db, partner_id=partner_id)
        emit(({"partner": r["partner_id"], "article": r["article_id"], "version": r["version"], "seq": r["seq"],
               "delivered": r["status"] == "delivered", "status": r["status"], "tries": r["tries"],
               "delivered_at": iso(r["delivered_at"]), "last_error": r["last_error"]} for r in rows),
             ("partner", "article", "version", "seq", "delivered", "status", "tries", "delivered_at", "last_error"),
             as_json)
        undelivered = sum(r["status"] != "delivered" for r in rows)
        summary(f"{len(rows)} kill deliveries, {undelivered} not delivered", as_json)


@deliveries_group.command("redrive")
@click.option("--partner", "partner_id", help="Only this partner's dead deliveries.")
@click.option("--id", "ids", multiple=True, type=int, help="Only these deliveries (repeatable).")
@click.pass_context
def deliveries_redrive(ctx, partner_id, ids) -> None:
    """Send dead deliveries again with a fresh retry budget (a running pusher picks them up)."""
    with open_state(ctx) as db:
        known_partner(db, partner_id)
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


@deliveries_group.command("skip")
@click.option("--partner", "partner_id", required=True)
@click.option("--through", type=click.IntRange(1), required=True,
              help="Pass the dead deliveries numbered up to this one (they stay dead: gaps a resend still sends).")
@click.pass_context
def deliveries_skip(ctx, partner_id, through) -> None:
    """Let a strict partner's line go on past its dead deliveries (instead of redriving them)."""
    with open_state(ctx) as db:
        partner = registry.get(db, partner_id)
        if not partner.strict:
            raise click.ClickException(f"{partner_id} has ordering {partner.ordering}: a dead delivery holds "
                                       f"nothing back (only a strict partner's line waits for it)")
        registry.skip_dead(db, partner_id, through)
        held = ordering.held_reason(db, partner)
        click.echo(f"{partner_id}: its line passes dead deliveries up to seq {through}"
                   + (f"\n{partner_id}: still HELD: {held}" if held else ""))


@deliveries_group.command("resend")
@click.option("--partner", "partner_id", required=True)
@click.option("--seq", "seq_range", type=SeqRange(), required=True, help="A sequence number or a range, e.g. 120-135.")
@click.pass_context
def deliveries_resend(ctx, partner_id, seq_range) -> None:
    """Send deliveries again with their original sequence numbers and webhook-ids."""
    with open_state(ctx) as db:
        partner = registry.get(db, partner_id)
        low, high = seq_range
        seqs = receipts.resend(db, partner_id, low, high)
        if not seqs:
            last = _last_seq(db, partner_id)
            raise click.ClickException(f"{partner_id} has no deliveries numbered {low}-{high} "
                                       f"({f'its numbers are 1-{last}' if last else 'it has none yet'})")
        click.echo(f"{partner_id}: resending {len(seqs)} deliveries ({low}-{high})")
        for line in _held_up(db, partner):
            click.echo(line)


def _held_up(db: Db, partner: Partner) -> list[str]:
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


def _keep_option(ctx, param, value: str | None) -> float | None:
    try:
        return None if value is None else parse_duration(value).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@deliveries_group.command("prune")
@click.option("--keep", callback=_keep_option, metavar="DURATION",
              help="Keep what was delivered this recently: 90d, 12w (default: NEWSWIRE_WEBHOOK_KEEP, 90d).")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.pass_context
def deliveries_prune(ctx, keep, dry_run) -> None:
    """Forget what was delivered longer ago than the retention (every pusher does it hourly).

    What was not delivered, and each partner's newest version and kill of each article, stay."""
    try:
        keep = WebhookConfig.from_env().keep_s if keep is None else keep
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if keep is None:
        raise click.ClickException("NEWSWIRE_WEBHOOK_KEEP is forever: nothing is pruned (give --keep 90d to prune)")
    with open_state(ctx) as db:
        pruned = outbox.prune(db, time.time() - keep, dry_run=dry_run)
    click.echo(f"{'would delete' if dry_run else 'deleted'}: {pruned.deliveries} deliveries, {pruned.attempts} "
               f"receipts" + ("" if dry_run else f", {pruned.bodies} bodies, {pruned.events} events")
               + f" (delivered more than {keep / 86400:g} days ago)")


@deliveries_group.command("gaps")
@click.option("--partner", "partner_id", required=True)
@json_option
@click.pass_context
def deliveries_gaps(ctx, partner_id, as_json) -> None:
    """Sequence numbers assigned to a partner but not acknowledged (yet)."""
    with open_state(ctx) as db:
        registry.get(db, partner_id)
        count = emit(({"seq": r["seq"], "article": r["article_id"], "version": r["version"],
                       "event_type": r["event_type"], "status": r["status"], "tries": r["tries"],
                       "last_error": r["last_error"]} for r in receipts.gaps(db, partner_id)),
                     ("seq", "article", "version", "event_type", "status", "tries", "last_error"), as_json)
        summary(f"{count} unacknowledged", as_json)


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
        loop_thread.run(pusher.serve(cli_settings(ctx), config))
    except pusher.PusherBusy as exc:
        raise click.ClickException(str(exc)) from exc
    except pusher.PusherFailed as exc:  # logged in full (kafka_loop_failed); a supervisor restarts it
        # on one line (a driver's message may have several: PostgreSQL's server-gone has three)
        raise click.ClickException(f"the pusher stopped: {' '.join(str(exc).split())}") from exc


@webhooks_group.command("demo-partner")
@click.option("--port", default=8090, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--secret", required=True, help="The partner's whsec_ secret (newswire partners show ID --secrets).")
def webhooks_demo_partner(port, host, secret) -> None:
    """A partner endpoint that verifies each push's signature and prints what it received."""
    from newswire.consumers.webhooks import demo_partner
    demo_partner.serve(host, port, secret)


COMMANDS = (partners_group, deliveries_group, webhooks_group)
