"""Operator sign-in for the status page's actions.

The token is ``NEWSWIRE_STATUS_TOKEN`` (without it the page is read-only and says so). A
person signs in once with it (``POST /login``, compared in constant time) and gets a session
cookie (random, ``HttpOnly``, ``SameSite=Strict``); every action is a POST that must carry
the session's CSRF token (an HMAC of the session under a key of this process), so another
site can neither read nor forge one. A script sends ``Authorization: Bearer <token>`` instead
(a browser never adds that header by itself, so it needs no CSRF token). Sessions live in
this process: a restart signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from aiohttp import web

TOKEN_ENV = "NEWSWIRE_STATUS_TOKEN"
COOKIE = "newswire_operator"


def token_from_env(environ: dict[str, str] | None = None) -> str | None:
    return ((os.environ if environ is None else environ).get(TOKEN_ENV) or "").strip() or None


class Operator:
    def __init__(self, token: str | None):
        self.token = token
        self._sessions: dict[str, list[str]] = {}  #: session → messages to show once
        self._key = secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def token_matches(self, presented: str) -> bool:
        return self.token is not None and hmac.compare_digest(presented.encode(), self.token.encode())

    def session(self, request: web.Request) -> str | None:
        sid = request.cookies.get(COOKIE)
        return sid if sid is not None and sid in self._sessions else None

    def csrf(self, sid: str | None) -> str:
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest() if sid else ""

    def sign_in(self, response: web.StreamResponse, request: web.Request) -> None:
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = []
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/", secure=request.secure)

    def sign_out(self, request: web.Request, response: web.StreamResponse) -> None:
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response.del_cookie(COOKIE, path="/")

    def tell(self, request: web.Request, message: str) -> None:
        """A message the next page this session sees shows once."""
        if (sid := self.session(request)) is not None:
            self._sessions[sid].append(message)

    def messages(self, request: web.Request) -> list[str]:
        sid = self.session(request)
        if sid is None:
            return []
        said, self._sessions[sid] = self._sessions[sid], []
        return said

    async def authorize(self, request: web.Request) -> dict[str, str]:
        """The form of an action POST once its sender is an operator; otherwise 403 (actions
        off), 401 (not signed in, no valid bearer token) or 403 (CSRF token missing or wrong)."""
        if not self.enabled:
            raise web.HTTPForbidden(text=f"actions are off: set {TOKEN_ENV} to enable them")
        form = {k: str(v) for k, v in (await request.post()).items()}
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and bearer:
            if self.token_matches(bearer.strip()):
                return form
            raise web.HTTPUnauthorized(text="the bearer token is not valid")
        sid = self.session(request)
        if sid is None:
            raise web.HTTPUnauthorized(text="sign in first (/login)")
        if not hmac.compare_digest(form.get("csrf", "").encode(), self.csrf(sid).encode()):
            raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page")
        return form
