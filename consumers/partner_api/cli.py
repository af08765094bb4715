"""``newswire partner-api serve`` and ``newswire partners token issue|list|revoke``."""

from __future__ import annotations

import time

import click
from newswire.consumers.partner_api import tokens
from newswire.consumers.replay.cli import partners_group
from newswire.consumers.webhooks.cli import cli_settings, known_partner, open_state
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.rows import emit, iso, json_option

TOKEN_FIELDS = ("id", "partner", "hint", "label", "state", "created_at", "expires_at", "revoked_at",
                "last_used_at", "replaced_by")


@click.group("partner-api")
def partner_api() -> None:
    """The partners' own API and page (tokens: `newswire partners token`)."""


@partner_api.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8089, show_default=True, type=int)
@click.option("--rate-limit", "rate", default="120/minute", show_default=True,
              help="Requests per token (limits' notation: 120/minute, 10/second).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, rate: str) -> None:
    """Serve the partner API (/v1/…) and the partner page (/) until SIGTERM/Ctrl-C."""
    from aiohttp import web
    from limits import parse

    from newswire.consumers.partner_api.app import create_app
    try:
        config = WebhookConfig.from_env()  # the SSRF allowlist and timeout of test events, as the pusher's
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        parse(rate)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--rate-limit") from exc
    web.run_app(create_app(cli_settings(ctx), webhook_config=config, rate=rate), host=host, port=port, print=None)


@partners_group.group("token")
def token_group() -> None:
    """Partner API tokens: each for one partner, kept only as a hash."""


def _row(token: tokens.Token) -> dict:
    shown = token.public(time.time())
    return {**shown, **{k: iso(shown[k]) for k in ("created_at", "expires_at", "revoked_at", "last_used_at")}}


@token_group.command("issue")
@click.argument("partner_id")
@click.option("--label", default="", help="What it is for (shown in lists).")
@click.option("--expires-days", type=click.IntRange(1, 3650),
              help="Days until it expires (default: never, until revoked or rotated).")
@click.pass_context
def token_issue(ctx, partner_id, label, expires_days) -> None:
    """Issue a token for PARTNER_ID; it is printed once and kept only as its SHA-256."""
    with open_state(ctx) as db:
        issued = tokens.issue(db, partner_id, label=label,
                              expires_at=time.time() + expires_days * 86400 if expires_days else None)
    click.echo(f"{partner_id}: token {issued.token.id}: {issued.secret}")
    click.echo(f"{partner_id}: shown once; send it as `Authorization: Bearer …` (newswire keeps only its hash)",
               err=True)


@token_group.command("list")
@click.option("--partner", "partner_id", help="Only this partner's.")
@json_option
@click.pass_context
def token_list(ctx, partner_id, as_json) -> None:
    """Tokens (never the token itself): state, when created, expires, last used."""
    with open_state(ctx) as db:
        known_partner(db, partner_id)
        emit((_row(t) for t in tokens.listed(db, partner_id)), TOKEN_FIELDS, as_json)


@token_group.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke(ctx, token_id) -> None:
    """End a token now."""
    with open_state(ctx) as db:
        token = tokens.revoke(db, token_id)
    click.echo(f"{token.partner_id}: token {token_id} revoked")
