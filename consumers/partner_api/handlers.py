"""The JSON API, ``/v1/*``: one partner's view and actions (:mod:`.service`), behind
:mod:`.auth` (``request[PARTNER_ID]`` is the caller's partner; no route takes a partner id).

Errors are ``{"errors": [{"field", "problem"}]}``: 400 a parameter or body that is not what
it must be, 401 no valid token, 404 no such number of yours, 409 not in your state, 413 a
body over 16 KiB, 422 a value out of its range, 429 over a limit (``Retry-After``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from newswire.consumers.partner_api import backfill, ping, service
from newswire.consumers.partner_api.context import AUDIT, Context, PARTNER_ID, TOKEN_ID
from newswire.consumers.partner_api.errors import ApiError, of_value_error
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import receipts
from newswire.params import ParamError, parse_int

#: the largest sequence number a parameter may name
MAX_SEQ = 10**15


def query_int(request: web.Request, name: str, *, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return parse_int(raw, name, low=low, high=high)
    except ParamError as exc:
        raise ApiError(400, name, str(exc).split(": ", 1)[1]) from None


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    if request.content_type != "application/json":
        raise ApiError(415, "Content-Type", f"must be application/json, got {request.content_type!r}")
    try:
        value = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body", f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "body", "must be a JSON object")
    return value


def body_int(body: dict, name: str, *, low: int, high: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if value is None:
        raise ApiError(400, name, "is required")
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(422, name, f"must be an integer from {low} to {high}")
    return value


def ok(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, headers={"Cache-Control": "no-store"})


async def call(ctx: Context, request: web.Request, work, field: str = "body"):
    """Run ``work(db, partner_id)`` with the state; its errors as the API says them."""
    partner_id = request[PARTNER_ID]
    try:
        return await ctx.run(lambda db: work(db, partner_id))
    except service.NotFound as exc:
        field_, _, problem = str(exc).partition(": ")
        raise ApiError(404, field_, problem) from None
    except service.Conflict as exc:
        raise ApiError(409, "state", str(exc)) from None
    except registry.UnknownPartner:
        raise ApiError(401, "Authorization", "your partner is no longer registered") from None
    except LookupError as exc:
        raise ApiError(404, field, str(exc)) from None
    except ValueError as exc:
        raise of_value_error(exc, field) from None


class Api:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.backfills = backfill.Backfills(ctx)

    async def me(self, request: web.Request) -> web.Response:
        token_id = request[TOKEN_ID]
        return ok(await call(self.ctx, request, lambda db, pid: service.me(db, pid, token_id)))

    async def deliveries(self, request: web.Request) -> web.Response:
        after = query_int(request, "after_seq", default=0, low=0, high=MAX_SEQ)
        limit = query_int(request, "limit", default=100, low=1, high=service.MAX_PAGE)
        return ok(await call(self.ctx, request,
                             lambda db, pid: service.deliveries(db, pid, after_seq=after, limit=limit)))

    async def delivery(self, request: web.Request) -> web.Response:
        try:
            seq = parse_int(request.match_info["seq"], "seq", low=1, high=MAX_SEQ)
        except ParamError as exc:
            raise ApiError(400, "seq", str(exc).split(": ", 1)[1]) from None
        return ok(await call(self.ctx, request, lambda db, pid: service.delivery(db, pid, seq)))

    async def gaps(self, request: web.Request) -> web.Response:
        return ok(await call(self.ctx, request, service.gaps))

    async def resend(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        if "seq" in body:
            if not isinstance(body["seq"], str):
                raise ApiError(400, "seq", "must be a string: a number or a range like \"120-135\"")
            try:
                low, high = receipts.parse_seq_range(body["seq"][:40])
            except ValueError as exc:
                raise ApiError(400, "seq", str(exc).split(": ", 1)[1]) from None
        else:
            low = body_int(body, "from_seq", low=1, high=MAX_SEQ)
            high = body_int(body, "to_seq", low=low, high=MAX_SEQ, default=low)
        seqs = await call(self.ctx, request, lambda db, pid: service.resend(db, pid, low, high), "seq")
        request[AUDIT] = f"resend {low}-{high}: {service.seqs_said(seqs)}"
        return ok({"resent": seqs}, 202)

    async def backfill(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        dry = body.get("dry_run", True)
        if not isinstance(dry, bool):
            raise ApiError(400, "dry_run", "must be true or false")
        try:
            since = backfill.window_start(body.get("since"))  # type: ignore[arg-type]
        except ValueError as exc:
            raise of_value_error(exc, "since") from None
        partner_id = request[PARTNER_ID]
        if dry:
            try:
                counted = await self.backfills.count(partner_id, since)
            except backfill.TooMany as exc:
                raise ApiError(429, "backfill", str(exc), headers={"Retry-After": "60"}) from None
            except ValueError as exc:
                raise ApiError(503, "backfill", str(exc)) from None
            request[AUDIT] = f"dry run since {since}: would queue {counted.to_queue}"
            return ok({"dry_run": True, "since": since, "would_queue": counted.to_queue})
        try:
            pid = await self.backfills.start(partner_id, since)
        except backfill.TooMany as exc:
            raise ApiError(429, "backfill", str(exc), headers={"Retry-After": "3600"}) from None
        request[AUDIT] = f"backfill since {since} started (pid {pid})"
        return ok({"dry_run": False, "since": since, "started": True}, 202)

    async def pause(self, request: web.Request) -> web.Response:
        return ok(await call(self.ctx, request, service.pause))

    async def resume(self, request: web.Request) -> web.Response:
        return ok(await call(self.ctx, request, service.resume))

    async def rotate_secret(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        overlap = body_int(body, "overlap_s", low=0, high=int(registry.MAX_OVERLAP_S),
                           default=int(registry.DEFAULT_OVERLAP_S))
        result = await call(self.ctx, request, lambda db, pid: service.rotate_secret(db, pid, overlap))
        request[AUDIT] = f"signing secret rotated: {result['signing_secrets']} sign, the old one {overlap} s"
        return ok(result)

    async def end_rotation(self, request: web.Request) -> web.Response:
        return ok(await call(self.ctx, request, service.end_rotation))

    async def test_event(self, request: web.Request) -> web.Response:
        partner = await call(self.ctx, request, registry.get)
        try:
            result = await ping.send(partner, self.ctx.config)
        except ValueError as exc:
            raise of_value_error(exc, "url") from None
        request[AUDIT] = f"test event {result['webhook_id']}: {result['status'] or result['error']}"
        return ok(result)

    async def tokens(self, request: web.Request) -> web.Response:
        return ok({"tokens": await call(self.ctx, request, service.own_tokens)})

    async def rotate_token(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        overlap = body_int(body, "overlap_s", low=0, high=7 * 86400, default=3600)
        token_id = request[TOKEN_ID]
        result = await call(self.ctx, request, lambda db, pid: service.rotate_token(db, pid, token_id, overlap))
        request[AUDIT] = f"token rotated: new {result['id']}, old valid {overlap} s"
        return ok(result)

    async def revoke_token(self, request: web.Request) -> web.Response:
        token_id = request.match_info["token_id"][:40]
        return ok(await call(self.ctx, request, lambda db, pid: service.revoke_token(db, pid, token_id), "token"))

    async def audit(self, request: web.Request) -> web.Response:
        before = query_int(request, "before_id", default=None, low=1, high=MAX_SEQ)
        limit = query_int(request, "limit", default=100, low=1, high=service.MAX_PAGE)
        return ok(await call(self.ctx, request,
                             lambda db, pid: service.audit_log(db, pid, before_id=before, limit=limit)))

    async def close(self, _: web.Application) -> None:
        await self.backfills.close()


#: the application's :class:`Api` (the page shares its backfills)
API = web.AppKey("partner_api", Api)


def add_routes(app: web.Application, ctx: Context) -> None:
    api = Api(ctx)
    app[API] = api
    for method, path, handler in (
            ("GET", "/v1/me", api.me),
            ("GET", "/v1/deliveries", api.deliveries),
            ("GET", "/v1/deliveries/{seq}", api.delivery),
            ("GET", "/v1/gaps", api.gaps),
            ("POST", "/v1/resend", api.resend),
            ("POST", "/v1/backfill", api.backfill),
            ("POST", "/v1/pause", api.pause),
            ("POST", "/v1/resume", api.resume),
            ("POST", "/v1/signing-secret/rotate", api.rotate_secret),
            ("POST", "/v1/signing-secret/end-rotation", api.end_rotation),
            ("POST", "/v1/test-event", api.test_event),
            ("GET", "/v1/tokens", api.tokens),
            ("POST", "/v1/tokens/rotate", api.rotate_token),
            ("POST", "/v1/tokens/{token_id}/revoke", api.revoke_token),
            ("GET", "/v1/audit", api.audit)):
        app.router.add_route(method, path, handler)
    app.on_cleanup.append(api.close)
