"""``newswire feeds``: the feeds consumer and the feed server, in one process."""

from __future__ import annotations

import asyncio
import os

import click
from aiohttp import web

from newswire.consumers.webhooks.config import parse_cidrs

from .access import Tokens
from .consumer import FeedsConsumer, open_renders, open_view
from .server import FeedServer, Options


@click.group("feeds")
def feeds() -> None:
    """RSS, Atom, NewsML-G2 and ninjs feeds, items and the change cursor over HTTP."""


@feeds.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int)
@click.option("--base-url", envvar="NEWSWIRE_FEED_BASE_URL",
              help="Public scheme://host used in feed links (default: the request's own).")
@click.option("--limit", default=Options.limit, show_default=True, type=click.IntRange(1, Options.max_limit),
              help="Items in a feed when the request does not say (?limit=).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, base_url: str | None, limit: int) -> None:
    """Run the feeds consumer (group newswire-feeds) and the feed server together.

    The view is kept in <NEWSWIRE_HOME>/feeds/view.sqlite3, the rendered items (a cache, which
    may be deleted while the server is stopped) in <NEWSWIRE_HOME>/feeds/renders.sqlite3. Partner tokens come from
    NEWSWIRE_FEED_TOKENS="partner:token,..." or the JSON file NEWSWIRE_FEED_TOKENS_FILE.
    The WebSub hub keeps its subscriptions in <NEWSWIRE_HOME>/feeds/websub.sqlite3; callbacks
    must be on public addresses or in NEWSWIRE_WEBSUB_ALLOW_CIDRS ("10.0.0.0/8,...").
    """
    try:
        tokens = Tokens.from_env()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"partner tokens: {exc}") from exc
    try:
        websub_allow = parse_cidrs(os.environ.get("NEWSWIRE_WEBSUB_ALLOW_CIDRS", ""))
    except ValueError as exc:
        raise click.ClickException(f"NEWSWIRE_WEBSUB_ALLOW_CIDRS: {exc}") from exc
    settings = ctx.find_root().obj
    authority = settings.authority()
    view, store = open_view(settings)
    renders = open_renders(settings, authority)
    consumer = FeedsConsumer(settings, view, store, renders=renders)
    server = FeedServer(view, store=store, tokens=tokens, consumer=consumer, renders=renders,
                        options=Options(base_url=base_url, limit=limit, authority=authority,
                                        websub_allow=websub_allow))
    app = server.app()

    async def start(_: web.Application) -> None:
        loop = asyncio.get_running_loop()
        consumer.start(on_failure=lambda: loop.call_soon_threadsafe(_exit_serving))

    async def stop(_: web.Application) -> None:
        await asyncio.to_thread(consumer.stop)
        store.close()
        renders.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    base = base_url or f"http://{host}:{port}"
    click.echo(f"feeds: {base}/feeds  e.g. {base}/feeds/all.rss {base}/feeds/all.atom "
               f"{base}/feeds/all.newsml {base}/feeds/all.json  changes: {base}/changes.json?since=0"
               f" {base}/changes.sse  hub: {base}/websub"
               f"  partners: {len(tokens)}")
    web.run_app(app, host=host, port=port, print=None, access_log=None)
    if consumer.failure is not None:  # a server without its consumer would serve a view that never moves
        raise click.ClickException(f"the feeds consumer stopped: {type(consumer.failure).__name__}: "
                                   f"{consumer.failure}")


def _exit_serving() -> None:
    """Stop ``web.run_app`` as SIGTERM would (cleanly, with its cleanup hooks)."""
    raise web.GracefulExit()
