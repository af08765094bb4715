"""``newswire status serve``: the operator's status page and ``/metrics``."""

from __future__ import annotations

import click
from aiohttp import web

from newswire.consumers.webhooks.config import WebhookConfig
from newswire.status.operator import token_from_env
from newswire.status.server import make_app


@click.group("status")
def status() -> None:
    """The operator's status page."""


@status.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8088, show_default=True, type=int)
@click.option("--feeds-url", help="The feed server's base URL, for links to each version's items "
                                  "(e.g. http://127.0.0.1:8081).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, feeds_url: str | None) -> None:
    """Serve the status page (/), partner pages, search, and Prometheus metrics (/metrics).

    The page's actions (pause, resume, redrive, resend, backfill) need an operator signed in
    with the token in NEWSWIRE_STATUS_TOKEN; without it the page is read-only."""
    settings = ctx.find_root().obj
    try:
        config = WebhookConfig.from_env()  # the breaker's threshold and cooldown, as the pusher has them
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    app = make_app(settings, webhook_config=config, operator_token=token_from_env(),
                   feeds_url=feeds_url.rstrip("/") if feeds_url else None)
    web.run_app(app, host=host, port=port, print=None)
