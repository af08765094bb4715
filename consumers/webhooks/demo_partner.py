"""A tiny partner endpoint for demos: verifies every push with the official
``standardwebhooks`` package and prints what it received (401 when the signature fails)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from newswire.consumers.webhooks.signing import SEQUENCE_HEADER


def describe(body: bytes, content_type: str) -> str:
    """One line about a received payload."""
    if content_type.startswith("application/json"):
        envelope = json.loads(body)
        data = envelope.get("data", {})
        headline = next((h["value"] for h in data.get("headlines", []) if h.get("role") == "main"), "")
        return f"{envelope.get('type')} v{data.get('version')} {data.get('pubStatus')}: {headline[:70]}"
    return f"{content_type} {len(body)} bytes"


#: a push whose body has not arrived by then is answered 408 (a stalled sender holds no handler for ever)
BODY_TIMEOUT_S = 15.0


def app(secret: str, body_timeout_s: float = BODY_TIMEOUT_S) -> web.Application:
    webhook = Webhook(secret)

    async def receive(request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(body_timeout_s):
                body = await request.read()
        except TimeoutError:
            print(f"TIMED OUT {request.headers.get('webhook-id')}: no body within {body_timeout_s:g} s", flush=True)
            return web.Response(status=408, text=f"body not received within {body_timeout_s:g} s")
        try:
            webhook.verify(body, dict(request.headers), json_parse=False)
        except WebhookVerificationError as exc:
            print(f"REJECTED {request.headers.get('webhook-id')}: {exc}", flush=True)
            return web.Response(status=401, text=str(exc))
        print(f"seq={request.headers.get(SEQUENCE_HEADER)} id={request.headers['webhook-id']} signature ok "
              f"{describe(body, request.content_type)}", flush=True)
        return web.Response(status=204)

    application = web.Application()
    application.router.add_post("/{tail:.*}", receive)
    return application


def serve(host: str, port: int, secret: str) -> None:
    print(f"demo partner listening on http://{host}:{port}/ (signatures checked with standardwebhooks)", flush=True)
    web.run_app(app(secret), host=host, port=port, print=None, access_log=None)

