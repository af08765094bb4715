"""The partner's page: the same operations as the JSON API (:mod:`.service`), for a person.

``/login`` takes a token and starts a session (:class:`.auth.Sessions`); ``/`` shows the
partner's state, gaps, latest deliveries with each attempt's answer, its tokens and its
audit log, with forms (each POST carrying the session's CSRF token) to pause or resume,
resend a range, count and start a backfill, rotate the signing secret, send a test event.
Rendered on the server; no script.
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from newswire.consumers.partner_api import backfill, ping, service
from newswire.consumers.partner_api.auth import Sessions
from newswire.consumers.partner_api.context import AUDIT, Context, PARTNER_ID, SESSION, SIGNED_IN, TOKEN_ID
from newswire.consumers.partner_api.errors import ApiError
from newswire.consumers.partner_api.handlers import API, Api, call
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import receipts
from newswire.consumers.webhooks.receipts import iso_time

_templates = jinja2.Environment(loader=jinja2.PackageLoader("newswire.consumers.partner_api", "templates"),
                                autoescape=True, trim_blocks=True, lstrip_blocks=True)
_templates.filters["iso"] = iso_time

#: the page's latest deliveries
SHOWN = 50


def _html(template: str, status: int = 200, **values: Any) -> web.Response:
    return web.Response(text=_templates.get_template(template).render(**values), status=status,
                        content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'self'; "
                                                            "form-action 'self'; frame-ancestors 'none'"})


class Page:
    def __init__(self, ctx: Context, sessions: Sessions, api: Api):
        self.ctx, self.sessions, self.api = ctx, sessions, api

    async def login_form(self, _: web.Request) -> web.Response:
        return _html("login.html", failed=False)

    async def login(self, request: web.Request) -> web.Response:
        if request[SIGNED_IN] is None:
            return _html("login.html", status=401, failed=True)
        response = web.HTTPSeeOther("/")
        self.sessions.start(response, request, request[SIGNED_IN])
        request[PARTNER_ID], request[TOKEN_ID] = request[SIGNED_IN].partner_id, request[SIGNED_IN].id
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        self.sessions.end(request, response)
        raise response

    async def home(self, request: web.Request) -> web.Response:
        sid, session = request[SESSION]
        token_id = request[TOKEN_ID]

        def values(db, pid) -> dict:
            me = service.me(db, pid, token_id)
            seen = service.deliveries(db, pid, after_seq=max(0, me["last_seq"] - SHOWN), limit=SHOWN)
            return {"me": me, "gaps": service.gaps(db, pid),
                    "deliveries": list(reversed(seen["deliveries"])), "tokens": service.own_tokens(db, pid),
                    "audit": service.audit_log(db, pid, before_id=None, limit=20)["entries"]}
        shown = await call(self.ctx, request, values)
        said, session.messages = session.messages, []
        return _html("home.html", csrf=self.sessions.csrf(sid), messages=said, **shown)

    def _tell(self, request: web.Request, message: str) -> web.Response:
        request[SESSION][1].messages.append(message)
        request[AUDIT] = message
        raise web.HTTPSeeOther("/")

    async def act(self, request: web.Request) -> web.Response:
        name, form = request.match_info["action"], await request.post()
        try:
            return await self._act(request, name, {k: str(v)[:200] for k, v in form.items()})
        except ApiError as exc:
            return self._tell(request, f"{name}: {exc.field}: {exc.problem}")

    async def _act(self, request: web.Request, name: str, form: dict[str, str]) -> web.Response:
        if name == "pause":
            await call(self.ctx, request, service.pause)
            return self._tell(request, "pushes paused: nothing is sent, stories published meanwhile are not queued")
        if name == "resume":
            result = await call(self.ctx, request, service.resume)
            return self._tell(request, "pushes resumed" + (f"; paused since {iso_time(result['paused_at'])}: a "
                                                           "backfill from then sends what was published meanwhile"
                                                           if result.get("paused_at") else ""))
        if name == "resend":
            try:
                low, high = receipts.parse_seq_range(form.get("seq", ""))
            except ValueError as exc:
                raise ApiError(400, "seq", str(exc).split(": ", 1)[1]) from None
            seqs = await call(self.ctx, request, lambda db, pid: service.resend(db, pid, low, high), "seq")
            return self._tell(request, f"resending {service.seqs_said(seqs)} with their numbers")
        if name == "backfill":
            return await self._backfill(request, form)
        if name == "rotate-secret":
            result = await call(self.ctx, request, service.rotate_secret)
            request[AUDIT] = "signing secret rotated"
            return _html("secret.html", secret=result["secret"], previous_secret_until=result["previous_secret_until"])
        if name == "end-rotation":
            await call(self.ctx, request, service.end_rotation)
            return self._tell(request, "the previous signing secret no longer signs")
        if name == "test-event":
            partner = await call(self.ctx, request, registry.get)
            try:
                result = await ping.send(partner, self.ctx.config)
            except ValueError as exc:
                raise ApiError(409, "url", str(exc)) from None
            answer = f"HTTP {result['status']}" if result["status"] else result["error"]
            return self._tell(request, f"test event {result['webhook_id']}: "
                                       f"{'delivered' if result['delivered'] else 'FAILED'} ({answer}, "
                                       f"{result['duration_ms']:.0f} ms)")
        raise web.HTTPNotFound()

    async def _backfill(self, request: web.Request, form: dict[str, str]) -> web.Response:
        try:
            since = backfill.window_start(form.get("since", ""))
        except ValueError as exc:
            raise ApiError(400, "since", str(exc).split(": ", 1)[1]) from None
        partner_id = request[PARTNER_ID]
        if not form.get("confirm"):
            try:
                counted = await self.api.backfills.count(partner_id, since)
            except backfill.TooMany as exc:
                raise ApiError(429, "backfill", str(exc), headers={"Retry-After": "60"}) from None
            except ValueError as exc:
                raise ApiError(503, "backfill", str(exc)) from None
            request[AUDIT] = f"dry run since {since}: would queue {counted.to_queue}"
            return _html("backfill.html", csrf=self.sessions.csrf(request[SESSION][0]), since=since,
                         count=counted.to_queue)
        try:
            await self.api.backfills.start(partner_id, since)
        except backfill.TooMany as exc:
            raise ApiError(429, "backfill", str(exc)) from None
        return self._tell(request, f"backfill since {since} started: the pusher delivers what it queues")


async def stylesheet(_: web.Request) -> web.Response:
    return web.Response(text=_templates.get_template("page.css").render(), content_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})


def add_routes(app: web.Application, ctx: Context, sessions: Sessions) -> None:
    page = Page(ctx, sessions, app[API])
    app.router.add_get("/static/page.css", stylesheet)
    app.router.add_get("/login", page.login_form)
    app.router.add_post("/login", page.login)
    app.router.add_post("/logout", page.logout)
    app.router.add_get("/", page.home)
    app.router.add_post("/actions/{action}", page.act)
