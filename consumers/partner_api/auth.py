"""Who calls: the partner API's one middleware (:func:`guard`).

- ``/v1/*`` takes a partner token in ``Authorization: Bearer`` only, never a cookie (so that
  no other site can make a browser call it) and never in the query string: a request with a
  token-like query parameter is refused before anything else (URLs end up in logs and
  proxies). A valid token puts ``request[PARTNER_ID]`` and ``request[TOKEN_ID]`` on the
  request; every handler reads only that partner's rows.
- The page (:mod:`.page`) signs in with a token once and then holds a session cookie
  (random, ``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS); each POST must carry
  the session's CSRF token (an HMAC of the session id under a key of this process) and, when a
  browser says where it comes from (``Origin``), come from this server. A
  session ends with its token: one revoked or expired signs its sessions out.
- Requests are limited per token (``limits``' moving window, in this process's memory),
  and failed sign-ins per remote address; past the limit the answer is 429 with
  ``Retry-After``.
- Every request (but ``/healthz``) is audited after it is answered (:mod:`.audit`), with
  the detail a handler put in ``request[AUDIT]``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from aiohttp import web
from limits import RateLimitItem, parse, storage, strategies

from newswire import logs
from newswire.consumers.partner_api import audit, tokens
from newswire.consumers.partner_api.context import AUDIT, Context, PARTNER_ID, SESSION, SIGNED_IN, TOKEN_ID
from newswire.consumers.partner_api.errors import ApiError

log = logs.get(__name__)

COOKIE = "newswire_partner"
#: a page session lasts at most this long, whatever its token
SESSION_S = 8 * 3600
#: query parameters that are refused, whatever their value (a token never goes in a URL)
TOKEN_PARAMETERS = frozenset({"token", "access_token", "api_key", "apikey", "key", "auth", "authorization",
                              "bearer", "session"})
#: failed sign-ins (bad token) per remote address
FAILED_LIMIT = "20/minute"
#: paths that are neither audited nor limited
QUIET = frozenset({"/healthz", "/favicon.ico"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Session:
    partner_id: str
    token_id: str
    started: float
    messages: list[str] = field(default_factory=list)


class Sessions:
    """The page's sessions, in this process (a restart signs everyone out)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._key = secrets.token_bytes(32)

    def start(self, response: web.StreamResponse, request: web.Request, token: tokens.Token) -> None:
        now = time.time()
        for old in [k for k, v in self._by_id.items() if now - v.started > SESSION_S]:
            del self._by_id[old]  # sessions that ran out and were not seen since
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = Session(token.partner_id, token.id, now)
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/", secure=request.secure,
                            max_age=SESSION_S)

    def of(self, request: web.Request) -> tuple[str, Session] | None:
        sid = request.cookies.get(COOKIE, "")
        session = self._by_id.get(sid)
        if session is None:
            return None
        if time.time() - session.started > SESSION_S:
            self._by_id.pop(sid, None)
            return None
        return sid, session

    def end(self, request: web.Request, response: web.StreamResponse | None = None) -> None:
        self._by_id.pop(request.cookies.get(COOKIE, ""), None)
        if response is not None:
            response.del_cookie(COOKIE, path="/")

    def csrf(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()

    def csrf_matches(self, sid: str, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.csrf(sid).encode())


class Limits:
    """Moving-window limits per key (``limits``, in memory)."""

    def __init__(self, per_token: str):
        self.limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self.per_token = parse(per_token)
        self.failed = parse(FAILED_LIMIT)

    def take(self, item: RateLimitItem, key: str, what: str) -> None:
        """Count one against ``item`` for ``key``, or 429 naming ``what`` with Retry-After."""
        if not self.limiter.hit(item, key):
            raise self.refusal(item, key, what)

    def refusal(self, item: RateLimitItem, key: str, what: str) -> ApiError:
        reset = self.limiter.get_window_stats(item, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        return ApiError(429, what, f"more than {item} for this {what}: try again in {wait} s",
                        headers={"Retry-After": str(wait)})

    def blocked(self, item: RateLimitItem, key: str) -> bool:
        return not self.limiter.test(item, key)


def bearer(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def same_origin(request: web.Request) -> bool:
    """A browser's POST came from this server's own pages (``Origin``, which browsers send with
    every cross-site POST; a request without one is not a browser's cross-site one). This also
    stops a sign-in forged by another site (with its own token), which no session protects."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    # the host only: behind a proxy that ends TLS the scheme seen here is http, the browser's https
    return origin.partition("://")[2] == request.host


def action_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource is not None else request.path[:100]}"


def guard(ctx: Context, sessions: Sessions, rate: Limits) -> Callable:
    """The middleware: see the module's docstring."""

    async def authenticate(request: web.Request, presented: str) -> tokens.Token:
        remote = request.remote or "-"
        if rate.blocked(rate.failed, remote):
            raise rate.refusal(rate.failed, remote, "address")
        token = await ctx.run(lambda db: tokens.verify(db, presented))
        if token is None:
            rate.limiter.hit(rate.failed, remote)
            log.warning("partner_api_token_refused", remote=remote, path=request.path)
            raise ApiError(401, "Authorization", "the token is not valid (unknown, expired or revoked)",
                           headers={"WWW-Authenticate": 'Bearer realm="newswire partner API"'})
        return token

    async def authorize(request: web.Request) -> None:
        """Set partner_id and token_id, or answer 401 / 403 / 303 (the page's sign-in)."""
        if request.method == "POST" and not request.path.startswith("/v1/") and not same_origin(request):
            raise ApiError(403, "Origin", "a form of this page can only be sent from this page")
        if request.path.startswith("/v1/"):
            presented = bearer(request)
            if presented is None:
                raise ApiError(401, "Authorization", "send the token as `Authorization: Bearer nwp_…`",
                               headers={"WWW-Authenticate": 'Bearer realm="newswire partner API"'})
            token = await authenticate(request, presented)
        elif request.path in ("/login", "/static/page.css"):
            if request.method == "POST":  # the sign-in: a refused token shows the form again
                form = await request.post()
                try:
                    request[SIGNED_IN] = await authenticate(request, str(form.get("token", "")).strip())
                except ApiError as exc:
                    if exc.status != 401:
                        raise
                    request[SIGNED_IN], request[AUDIT] = None, exc.problem
            return
        else:
            found = sessions.of(request)
            token = None
            if found is not None:
                sid, session = found
                token = await ctx.run(lambda db: tokens.get(db, session.token_id))
            if token is None or token.state(time.time()) != "active":
                if found is not None:
                    sessions.end(request)
                if request.method == "GET":
                    raise web.HTTPSeeOther("/login")
                raise ApiError(401, "session", "sign in first (/login)")
            if request.method == "POST":
                form = await request.post()
                if not sessions.csrf_matches(sid, str(form.get("csrf", ""))):
                    raise ApiError(403, "csrf", "the form's CSRF token is missing or wrong: reload the page")
            request[SESSION] = (sid, found[1])
        request[PARTNER_ID], request[TOKEN_ID] = token.partner_id, token.id
        rate.take(rate.per_token, token.id, "token")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in QUIET:
            return await handler(request)
        status, detail = 500, None
        try:
            if TOKEN_PARAMETERS & {k.lower() for k in request.query} or any(
                    tokens.PREFIX in v for v in request.query.values()):
                raise ApiError(400, "query", "a token is never accepted in the URL: send it in the "
                                             "Authorization header (and rotate one that was in a URL)")
            await authorize(request)
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            detail = getattr(exc, "problem", None) if status >= 400 else None
            raise
        finally:
            entry = audit.Entry(request.get(PARTNER_ID), request.get(TOKEN_ID), request.remote,
                                action_of(request), status, request.get(AUDIT) or detail)
            if request.method != "GET":
                log.info("partner_api_call", partner=entry.partner_id, token_id=entry.token_id, action=entry.action,
                         status=status, detail=entry.detail)
            try:
                await ctx.run(lambda db: audit.record(db, entry))
            except Exception as exc:  # an audit that cannot be written is logged, the answer stands
                log.error("partner_api_audit_failed", partner=entry.partner_id, action=entry.action, error=str(exc))
    return middleware
