"""The pull transport's HTTP side: ``GET /v1/changes`` (a partner's deliveries, by its sequence
numbers, the same cursor as its pushes) and ``GET|PUT /v1/delivery-mode`` (push or pull, article
or strict order). The logic is :mod:`newswire.consumers.webhooks.pull`'s; these handlers read
the parameters, name the one that is wrong (:class:`.errors.ApiError`), and answer JSON.

Every handler serves ``request[PARTNER_ID]``, the partner the API's authentication set, and
no other.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from newswire.consumers.partner_api.context import PARTNER_ID
from newswire.consumers.partner_api.errors import ApiError, of_value_error
from newswire.consumers.webhooks import ordering, pull, ssrf, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.partners import MODES, ORDERINGS

STORE = web.AppKey("pull_store", store.AsyncStore)
WATCH = web.AppKey("pull_watch", pull.Watch)
#: the installation's private networks an endpoint may be on (NEWSWIRE_WEBHOOK_ALLOW_CIDRS)
ALLOW = web.AppKey("pull_allow", tuple)
#: a page's size unless asked
DEFAULT_LIMIT = 100


def _integer(text: str | None, field: str, low: int, high: int | None = None) -> int | None:
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()):
        raise ApiError(400, field, f"must be a whole number, got {text!r}")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise ApiError(400, field, f"must be {low} to {high}" if high is not None else f"must be >= {low}")
    return value


def _seconds(text: str | None, field: str, high: float) -> float:
    if text is None or text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, field, f"must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= high:
        raise ApiError(400, field, f"must be 0 to {high:g} seconds")
    return value


async def changes(request: web.Request) -> web.Response:
    """``GET /v1/changes?after=<seq>&limit=<1-1000>&wait=<0-30 s>``."""
    query = request.query
    after = _integer(query.get("after"), "after", 0)
    limit = _integer(query.get("limit"), "limit", 1, pull.MAX_LIMIT) or DEFAULT_LIMIT
    wait_s = _seconds(query.get("wait"), "wait", pull.MAX_WAIT_S)
    partner_id = request[PARTNER_ID]
    try:
        page = await pull.long_poll(request.app[STORE], request.app[WATCH], partner_id, after=after, limit=limit,
                                    wait_s=wait_s)
    except pull.NotPulling as exc:
        raise ApiError(409, exc.field, str(exc)) from None
    last = page.last_seq if page.last_seq is not None else after
    return web.json_response({
        "partner": partner_id, "after": after, "acknowledged": len(page.acknowledged),
        "changes": [change.as_json() for change in page.changes], "last_seq": last, "more": page.more,
        "next": f"/v1/changes?after={last}" if last is not None else "/v1/changes"})


def _mode(db, partner_id: str) -> dict[str, Any]:
    partner = registry.get(db, partner_id)
    return {"partner": partner.id, "mode": partner.mode, "ordering": partner.ordering,
            "first_unacknowledged": pull.first_unacknowledged(db, partner.id),
            "held": ordering.held_reason(db, partner)}


async def delivery_mode(request: web.Request) -> web.Response:
    """``GET /v1/delivery-mode``: push or pull, article or strict order, where it stands."""
    return web.json_response(await request.app[STORE].run(_mode, request[PARTNER_ID]))


def _switched(db, partner_id: str, mode: str | None, ordering: str | None, after: int | None,
              allow: tuple) -> dict[str, Any]:
    pull.switch(db, partner_id, mode=mode, ordering=ordering, after=after, allow=allow)
    return _mode(db, partner_id)


async def set_delivery_mode(request: web.Request) -> web.Response:
    """``PUT /v1/delivery-mode`` ``{"mode": "push"|"pull", "ordering": "article"|"strict", "after": <seq>}``
    (each optional; ``after`` acknowledges what pulls handed out up to there before leaving pull)."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body", "must be a JSON object")
    for field, allowed in (("mode", MODES), ("ordering", ORDERINGS)):
        if field in body and body[field] not in allowed:
            raise ApiError(400, field, f"must be one of {', '.join(allowed)}, got {body[field]!r}")
    after = body.get("after")
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
        raise ApiError(400, "after", f"must be a whole number >= 0, got {after!r}")
    try:
        shown = await request.app[STORE].run(_switched, request[PARTNER_ID], body.get("mode"),
                                              body.get("ordering"), after, request.app[ALLOW])
    except ssrf.EndpointRefused as exc:  # back to push, to an endpoint the SSRF guard refuses now
        raise ApiError(409, "url", str(exc)) from None
    except ValueError as exc:  # e.g. back to push without an endpoint URL ("url: …")
        error = of_value_error(exc, "mode")
        raise ApiError(409, error.field, error.problem) from None
    return web.json_response(shown)


def add_routes(app: web.Application, ctx: Any) -> None:
    """Mount the pull routes on the partner API's app (``ctx.settings`` and ``ctx.config``, the
    installation's Settings and WebhookConfig)."""
    app[ALLOW] = tuple(ctx.config.allow_cidrs)

    async def open_store(app: web.Application):
        app[STORE] = store.AsyncStore(ctx.settings, synchronous="NORMAL")  # as the pusher's receipts
        app[WATCH] = pull.Watch(app[STORE])
        await app[WATCH].start()
        yield
        await app[WATCH].close()
        app[STORE].close()

    async def stop_waiting(app: web.Application) -> None:
        app[WATCH].stop_waiting()  # a stopping server does not wait out the long polls

    app.cleanup_ctx.append(open_store)
    app.on_shutdown.append(stop_waiting)
    app.router.add_get("/v1/changes", changes)
    app.router.add_get("/v1/delivery-mode", delivery_mode)
    app.router.add_put("/v1/delivery-mode", set_delivery_mode)
