"""Real partner endpoints on 127.0.0.1 for the webhook tests, and the pusher's test settings.

A :class:`Partner` server records every request it gets, verifies each with the official
``standardwebhooks`` package against the partner's secrets, and answers as its
``respond(n, request)`` says: a status (with headers), ``"hang"`` (never answers),
``"close"`` (drops the connection) or ``"block"`` (answers 200 once ``gate`` is set).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from newswire import bus
from newswire.broker import free_port
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.config import WebhookConfig, parse_cidrs
from newswire.consumers.webhooks.filters import Subscription
from newswire.consumers.webhooks.signing import SEQUENCE_HEADER, new_secret
from tests.cli_runner import invoke

LOOPBACK = parse_cidrs("127.0.0.0/8")


def config(**changes) -> WebhookConfig:
    """Fast settings for tests: 0.2 s retry steps, short timeout, loopback allowed, and a consumer
    group of its own (a member of another test's pusher still leaving a shared group would hold
    up the join by a session timeout)."""
    values = dict(schedule=(0, 0.2, 0.2, 0.2, 0.2, 0.2), jitter=0.0, timeout_s=1.0, breaker_failures=50,
                  breaker_cooldown_s=0.3, allow_cidrs=LOOPBACK, poll_s=0.2,
                  group_id=f"newswire-webhooks-{uuid.uuid4().hex[:8]}")
    values.update(changes)
    return WebhookConfig(**values)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    verified: bool
    answered: object

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def seq(self) -> int:
        return int(self.headers[SEQUENCE_HEADER])

    @property
    def envelope(self) -> dict:
        return json.loads(self.body)

    @property
    def article(self) -> tuple[str, int, str]:
        """(article id, version, event type) of a ninjs envelope."""
        data = self.envelope["data"]
        article_id = next(a["value"] for a in data["altIds"] if a["role"] == "article-id")
        return article_id, int(data["version"]), self.envelope["type"].removeprefix("article.")


Respond = Callable[[int, web.Request], object]
#: what was sent, in the request a respond() is given (to answer by it)
BODY = web.RequestKey("body", bytes)


class PartnerServer:
    """One partner endpoint (its own thread and event loop); stop() and start() keep the port."""

    def __init__(self, secrets: list[str], respond: Respond | None = None):
        self.secrets = secrets
        self.respond: Respond = respond or (lambda n, request: 200)
        self.port = free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gate = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/newswire"

    def _verified(self, body: bytes, headers: dict[str, str]) -> bool:
        try:
            for secret in self.secrets:
                Webhook(secret).verify(body, headers, json_parse=False)
            return True
        except WebhookVerificationError:
            return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = dict(request.headers)
        with self.lock:
            n = len(self.received) + 1
        request[BODY] = body
        answer = self.respond(n, request)
        with self.lock:
            self.received.append(Received(headers, body, time.time(), self._verified(body, headers),
                                          200 if answer == "block" else answer))
        if answer == "block":
            while not self.gate.is_set():
                await asyncio.sleep(0.02)
            answer = 200
        if answer == "hang":
            await asyncio.sleep(3600)
        if answer == "close":
            request.transport.close()
            await asyncio.sleep(0.05)
            return web.Response(status=200)
        status, extra = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=extra)

    def start(self) -> "PartnerServer":
        ready = threading.Event()
        self._loop = loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"partner-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("partner server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
            self._thread = self._loop = None

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def ok(self) -> list[Received]:
        """The requests this server answered with a 2xx."""
        return [r for r in self.snapshot() if isinstance(r.answered, int) and 200 <= r.answered < 300]


def register(settings, partner_id: str, server: PartnerServer, *, subscription: Subscription | None = None,
             **fields) -> registry.Partner:
    """Register ``server`` as partner ``partner_id`` (loopback allowed for it)."""
    db = store.connect(settings)
    try:
        partner = registry.Partner(id=partner_id, name=partner_id.title(), url=server.url,
                                   subscription=subscription or Subscription(),
                                   secrets=tuple(server.secrets[:1]) or (new_secret(),), **fields)
        return registry.add(db, partner, allow=LOOPBACK)
    finally:
        db.close()


def publish(settings, events) -> None:
    kafka = bus.producer(settings)
    try:
        bus.publish_events(settings, kafka, events)
    finally:
        kafka.close()


def wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = 40.0, every_s: float = 0.05) -> None:
    """Wait until ``predicate()`` holds (a deadline against hanging, not a timed assertion)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(every_s)


def query(settings, sql: str, *args) -> list:
    db = store.connect(settings)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def env_of(settings, **extra: str) -> dict[str, str]:
    """NEWSWIRE_* variables that make a ``newswire`` command use ``settings``, and ``extra``."""
    return {**settings.to_env(), **extra}


def cli(settings, *args: str, env: dict[str, str] | None = None, ok: bool = True):
    """Run ``newswire ARGS`` in-process on ``settings``; returns click's Result."""
    from newswire.cli import main
    result = invoke(main, ["--log-level", "WARNING", *args], env=env_of(settings, **(env or {})))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def pusher_process(settings, log_path, **env: str) -> subprocess.Popen:
    """``newswire webhooks run`` as a real subprocess on ``settings`` (fast test schedule, loopback
    allowed, a group of its own; ``env`` overrides), logging to ``log_path``."""
    env = {**os.environ, **env_of(settings, **{
        "NEWSWIRE_WEBHOOK_GROUP": f"webhooks-{settings.topics.articles}",
        "NEWSWIRE_WEBHOOK_SCHEDULE": "0,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3",
        "NEWSWIRE_WEBHOOK_JITTER": "0", "NEWSWIRE_WEBHOOK_TIMEOUT": "2",
        "NEWSWIRE_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8", "NEWSWIRE_WEBHOOK_POLL": "0.2",
        "NEWSWIRE_WEBHOOK_BREAKER_FAILURES": "1000",
        "NEWSWIRE_WEBHOOK_LEASE": "2",  # PostgreSQL: the dead one's partners free after 2 s
        **env})}
    return subprocess.Popen([sys.executable, "-m", "newswire.cli", "--log-level", "INFO", "webhooks", "run"],
                            env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


def failure_line(code: int, log_path) -> str:
    """The line a pusher that stopped on an error ends its log with, after checking that it
    exited 1 (``code``: its exit code), as its supervisor sees it."""
    assert code == 1, log_path.read_text()[-3000:]
    return log_path.read_text().strip().splitlines()[-1]
