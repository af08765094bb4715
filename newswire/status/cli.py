"""``newswire status serve``: the operator's status page and ``/metrics``."""

from __future__ import annotations

import click
from aiohttp import web

from newswire.consumers.webhooks.config import WebhookConfig
from newswire.status.sections import partner_states, standard_sections
from newswire.status.server import make_app


@click.group("status")
def status() -> None:
    """The operator's status page."""


@status.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8088, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the status page (/) and Prometheus metrics (/metrics)."""
    settings = ctx.find_root().obj
    try:
        config = WebhookConfig.from_env()  # the breaker's threshold and cooldown, as the pusher has them
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    app = make_app(settings, standard_sections(settings), partners=partner_states(settings, config))
    web.run_app(app, host=host, port=port, print=None)
