"""The partner API's aiohttp application (``newswire partner-api serve``).

Route modules are listed in :data:`ROUTE_MODULES`; each has ``add_routes(app, ctx)`` and
its paths under ``/v1/`` are behind the token (:mod:`.auth`, which puts
``request[PARTNER_ID]`` and ``request[TOKEN_ID]`` on the request). Mounting one more is
one more name in that tuple.
"""

from __future__ import annotations

from aiohttp import web

from newswire.config import Settings
from newswire.consumers.partner_api import changes, handlers, page
from newswire.consumers.partner_api.auth import Limits, Sessions, guard
from newswire.consumers.partner_api.context import Context
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.config import WebhookConfig

#: the modules whose routes the API serves (each: add_routes(app, ctx))
ROUTE_MODULES = (handlers, changes)
#: requests per token, in ``limits``' notation
DEFAULT_RATE = "120/minute"
#: the largest request body (every body the API takes is a few fields)
MAX_BODY = 16 * 1024


def create_app(settings: Settings, *, webhook_config: WebhookConfig | None = None,
               rate: str = DEFAULT_RATE) -> web.Application:
    """The partner API on this state. ``webhook_config``: the pusher's (SSRF allowlist and
    timeout of a test event); ``rate``: each token's request limit (e.g. ``120/minute``)."""
    ctx = Context(settings, webhook_config or WebhookConfig())
    store.connect(settings).close()  # the state exists at its schema before the first request
    sessions = Sessions()
    app = web.Application(middlewares=[guard(ctx, sessions, Limits(rate))], client_max_size=MAX_BODY)
    for module in ROUTE_MODULES:
        module.add_routes(app, ctx)
    page.add_routes(app, ctx, sessions)

    async def close(_: web.Application) -> None:
        ctx.close()
    app.on_cleanup.append(close)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})
    app.router.add_get("/healthz", healthz)
    return app
