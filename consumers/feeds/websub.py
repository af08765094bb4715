"""WebSub (W3C Recommendation, 23 January 2018): the feed server is the hub of its public feeds.

* **Discovery.** Every public feed answer carries ``Link: <…/websub>; rel="hub", <topic>; rel="self"``,
  and RSS and Atom documents an ``atom:link rel="hub"``. The topic is the feed's own URL
  (``{base}/feeds/{feed}.{fmt}``, with the server's ``--base-url``). Partner feeds are not topics.
* **Subscribing.** ``POST /websub`` (``application/x-www-form-urlencoded``) with ``hub.mode``
  (``subscribe`` or ``unsubscribe``), ``hub.topic``, ``hub.callback`` (http or https, on an address
  the SSRF guard of :mod:`newswire.consumers.webhooks.ssrf` allows: public ones, or those in
  ``NEWSWIRE_WEBSUB_ALLOW_CIDRS``), ``hub.lease_seconds`` (a wish, kept within
  :data:`MIN_LEASE_S` .. :data:`MAX_LEASE_S`, default :data:`DEFAULT_LEASE_S`) and ``hub.secret``
  (optional, under 200 bytes). A bad request answers 400 naming the field; a good one 202, and
  then the hub **verifies the intent**: ``GET <callback>?hub.mode=…&hub.topic=…&hub.challenge=…
  &hub.lease_seconds=…``, which the subscriber confirms by answering 2xx with the challenge as
  its body. Only then is the subscription stored (or removed). Subscribing again before the
  lease ends renews it (the same verification, a new lease).
* **Distribution.** When changes become durable, the hub finds the feeds they touched and POSTs
  the topic's current document (what a GET of the topic answers the public) to each subscriber
  of a touched topic, with the topic's Content-Type, the same ``Link`` headers and, for a
  subscription with a secret, ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body keyed
  with hub.secret>``. A 2xx answer is done; 410 removes the subscription; anything else is
  tried again after each delay of :data:`RETRY_S`, then given up (logged). Since each
  distribution is the whole document, a newer one replaces an older one still being retried
  for the same subscriber (which would otherwise arrive after it).
* **Leases.** A subscription whose lease has ended is removed (logged ``websub_lease_expired``)
  at the next distribution or sweep (every :data:`SWEEP_S` seconds) and gets nothing more.
* **Limits.** At most :data:`MAX_SUBSCRIPTIONS` subscriptions and :data:`MAX_VERIFYING`
  verifications under way: past them a request answers 503 with ``Retry-After``.

Subscriptions are kept in SQLite beside the feed view (``websub.sqlite3``); the secret is
stored as given, since the hub needs it to sign.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from newswire import logs
from newswire.consumers.webhooks.config import Network
from newswire.consumers.webhooks.ssrf import EndpointRefused, GuardedResolver, check_endpoint, check_literal
from newswire.params import ParamError, parse_int

from .conditional import Body
from .realtime import ChangeSignal
from .store import connect
from .view import FEED_NAME, PUBLIC, FeedView

log = logs.get(__name__)

PATH = "/websub"
DEFAULT_LEASE_S = 10 * 86400
MIN_LEASE_S = 60
MAX_LEASE_S = 30 * 86400
#: seconds between the attempts of one content distribution after the first
RETRY_S: tuple[float, ...] = (5, 30, 120)
#: seconds between sweeps of ended leases when nothing changes
SWEEP_S = 60.0
#: seconds one request to a subscriber may take
TIMEOUT_S = 10.0
MAX_SECRET_BYTES = 200
MAX_SUBSCRIPTIONS = 10_000
MAX_VERIFYING = 100
_TOPIC = re.compile(r"/feeds/([a-z0-9-]+)\.(rss|atom|json|newsml)")

Clock = Callable[[], datetime]
#: the public document of a feed: (feed, format, base URL) → body, or None when there is nothing to send
Render = Callable[[str, str, str], Body | None]


def _us(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000)


@dataclass(frozen=True)
class Subscription:
    topic: str
    callback: str
    secret: str | None
    lease_s: int
    expires: datetime


class SubscriptionStore:
    """The hub's subscriptions in one SQLite file (its only writer)."""

    _SCHEMA = """CREATE TABLE IF NOT EXISTS subscriptions (
        topic TEXT NOT NULL, callback TEXT NOT NULL, secret TEXT, lease_s INTEGER NOT NULL,
        expires_us INTEGER NOT NULL, PRIMARY KEY (topic, callback)) WITHOUT ROWID"""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._db = connect(path)
        self._db.execute("PRAGMA synchronous=FULL")  # a confirmed subscription survives a power cut
        self._db.execute(self._SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, sub: Subscription) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?)",
                             (sub.topic, sub.callback, sub.secret, sub.lease_s, _us(sub.expires)))

    def remove(self, topic: str, callback: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM subscriptions WHERE topic = ? AND callback = ?",
                                    (topic, callback)).rowcount > 0

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM subscriptions").fetchone()[0]

    def all(self) -> list[Subscription]:
        with self._lock:
            rows = self._db.execute("SELECT topic, callback, secret, lease_s, expires_us FROM subscriptions"
                                    " ORDER BY topic, callback").fetchall()
        return [Subscription(t, c, s, lease, datetime.fromtimestamp(us / 1e6, timezone.utc))
                for t, c, s, lease, us in rows]

    def expire(self, now: datetime) -> list[Subscription]:
        """Remove and return the subscriptions whose lease ended by ``now``."""
        ended = [sub for sub in self.all() if sub.expires <= now]
        with self._lock:
            self._db.executemany("DELETE FROM subscriptions WHERE topic = ? AND callback = ? AND expires_us <= ?",
                                 [(s.topic, s.callback, _us(now)) for s in ended])
        return ended


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` of ``body`` for a subscriber's ``hub.secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def link_header(hub: str, topic: str) -> str:
    return f'<{hub}>; rel="hub", <{topic}>; rel="self"'


class BadRequest(ValueError):
    """A subscription request the hub refuses (the message names the field)."""


@dataclass(frozen=True)
class Request:
    mode: str
    topic: str
    feed: str
    fmt: str
    callback: str
    lease_s: int
    secret: str | None


def parse_request(form: dict[str, str], base: str) -> Request:
    """A subscription request from its form fields; BadRequest naming the field otherwise."""
    mode = form.get("hub.mode")
    if mode not in ("subscribe", "unsubscribe"):
        raise BadRequest(f"hub.mode: must be subscribe or unsubscribe, not {mode!r}")
    topic = form.get("hub.topic") or ""
    found = _TOPIC.fullmatch(topic[len(base):]) if topic.startswith(base + "/") else None
    if found is None or not FEED_NAME.fullmatch(found.group(1)):
        raise BadRequest(f"hub.topic: {topic[:200]!r} is not a feed of this server"
                         f" ({base}/feeds/<feed>.<rss|atom|json|newsml>)")
    callback = form.get("hub.callback") or ""
    if urlsplit(callback).scheme not in ("http", "https") or len(callback) > 2000:
        raise BadRequest(f"hub.callback: {callback[:200]!r} is not an http(s) URL of at most 2000 characters")
    try:
        lease = parse_int(form["hub.lease_seconds"], "hub.lease_seconds", low=0, high=10**9) \
            if "hub.lease_seconds" in form else DEFAULT_LEASE_S
    except ParamError as exc:
        raise BadRequest(str(exc)) from None
    secret = form.get("hub.secret") or None
    if secret is not None and len(secret.encode()) >= MAX_SECRET_BYTES:
        raise BadRequest(f"hub.secret: must be under {MAX_SECRET_BYTES} bytes")
    return Request(mode, topic, found.group(1), found.group(2), callback,
                   min(max(lease, MIN_LEASE_S), MAX_LEASE_S), secret)


class Hub:
    """The WebSub hub of one feed server (see the module doc)."""

    def __init__(self, view: FeedView, signal: ChangeSignal, store: SubscriptionStore, render: Render, *,
                 clock: Clock, base_url: str | None = None, allow: Iterable[Network] = (),
                 retry_s: tuple[float, ...] = RETRY_S):
        self.view = view
        self.signal = signal
        self.store = store
        self.render = render
        self.clock = clock
        #: scheme://host of the topics; by default the subscribe request's own
        self.base_url = base_url
        self.allow = tuple(allow)
        self.retry_s = retry_s
        #: the cursor up to which changes have been distributed
        self.cursor = view.durable
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self._verifying = 0
        #: the distribution under way to each (topic, callback), replaced by a newer one
        self._sending: dict[tuple[str, str], asyncio.Task] = {}

    # --- lifecycle (the application's signals) ------------------------------------------------

    async def start(self, _: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.allow)),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), auto_decompress=True)
        self.cursor = self.view.durable
        self._spawn(self._run())

    async def stop(self, _: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        self.store.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def busy(self) -> bool:
        """Whether a verification or a distribution is under way (for tests and the bench)."""
        return len(self._tasks) > 1

    # --- subscribing --------------------------------------------------------------------------

    def base(self, request: web.Request) -> str:
        return self.base_url or f"{request.scheme}://{request.host}"

    async def subscribe(self, request: web.Request) -> web.Response:
        """``POST /websub``: 202 and a verification of intent, or 400 naming the field."""
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        try:
            asked = parse_request(form, self.base(request))
            await asyncio.to_thread(check_endpoint, asked.callback, self.allow)
        except (EndpointRefused, ValueError) as exc:
            message = str(exc) if isinstance(exc, BadRequest) else f"hub.callback: {exc}"
            log.warning("websub_request_refused", reason=message, callback=form.get("hub.callback"))
            return web.Response(status=400, text=message + "\n")
        if self._verifying >= MAX_VERIFYING or (asked.mode == "subscribe" and self.store.count() >= MAX_SUBSCRIPTIONS):
            log.warning("websub_request_deferred", topic=asked.topic, callback=asked.callback,
                        verifying=self._verifying)
            return web.Response(status=503, headers={"Retry-After": "60"},
                                text="the hub is at its limit of subscriptions or verifications; try later\n")
        self._verifying += 1
        self._spawn(self._verify(asked))
        return web.Response(status=202, text="verifying the intent at the callback\n")

    async def _verify(self, asked: Request) -> None:
        try:
            await self._confirm(asked)
        finally:
            self._verifying -= 1

    async def _confirm(self, asked: Request) -> None:
        challenge = secrets.token_urlsafe(24)
        url = URL(asked.callback).update_query({"hub.mode": asked.mode, "hub.topic": asked.topic,
                                                "hub.challenge": challenge, "hub.lease_seconds": str(asked.lease_s)})
        try:
            check_literal(asked.callback, self.allow)
            async with self._session.get(url, allow_redirects=False) as answer:
                text = await answer.text()
                confirmed = 200 <= answer.status < 300 and text.strip() == challenge
                status = answer.status
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.warning("websub_verification_failed", topic=asked.topic, callback=asked.callback, mode=asked.mode,
                        error=f"{type(exc).__name__}: {exc}")
            return
        if not confirmed:
            log.warning("websub_verification_refused", topic=asked.topic, callback=asked.callback, mode=asked.mode,
                        status=status)
            return
        if asked.mode == "subscribe":
            expires = self.clock() + timedelta(seconds=asked.lease_s)
            self.store.put(Subscription(asked.topic, asked.callback, asked.secret, asked.lease_s, expires))
            log.info("websub_subscribed", topic=asked.topic, callback=asked.callback, lease_s=asked.lease_s,
                     expires=expires.isoformat())
        else:
            self.store.remove(asked.topic, asked.callback)
            log.info("websub_unsubscribed", topic=asked.topic, callback=asked.callback)

    # --- distribution -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self.signal.closing:
            try:
                if self.view.durable > self.cursor:
                    self.distribute()
                elif not await self.signal.wait(SWEEP_S):
                    self.sweep()
            except (sqlite3.Error, OSError) as exc:  # the next change or sweep tries again
                log.error("websub_distribution_failed", cursor=self.cursor, error=f"{type(exc).__name__}: {exc}")
                await self.signal.wait(SWEEP_S)

    def sweep(self) -> list[Subscription]:
        """Remove the subscriptions whose lease has ended."""
        ended = self.store.expire(self.clock())
        for sub in ended:
            log.info("websub_lease_expired", topic=sub.topic, callback=sub.callback)
        return ended

    def distribute(self) -> None:
        """Send every topic the changes since the last call touched to its subscribers."""
        touched: set[str] = set()
        while self.view.durable > self.cursor:
            entries, self.cursor = self.view.changes_since(self.cursor, limit=1000, audience=PUBLIC)
            for entry in entries:
                touched.update(entry.feeds)
        self.sweep()
        bodies: dict[str, Body | None] = {}
        for sub in self.store.all():
            found = _TOPIC.search(urlsplit(sub.topic).path)
            if found is None or found.group(1) not in touched:
                continue
            if sub.topic not in bodies:
                base = sub.topic[:sub.topic.index("/feeds/")]
                bodies[sub.topic] = self.render(found.group(1), found.group(2), base)
            if bodies[sub.topic] is not None:
                key = (sub.topic, sub.callback)
                if (older := self._sending.get(key)) is not None:
                    older.cancel()  # superseded: this document is newer
                self._sending[key] = task = self._spawn(self._deliver(sub, bodies[sub.topic]))
                task.add_done_callback(functools.partial(self._sent, key))

    def _sent(self, key: tuple[str, str], task: asyncio.Task) -> None:
        if self._sending.get(key) is task:
            del self._sending[key]

    async def _deliver(self, sub: Subscription, body: Body) -> None:
        hub = sub.topic[:sub.topic.index("/feeds/")] + PATH
        headers = {"Content-Type": body.content_type, "Link": link_header(hub, sub.topic)}
        if sub.secret:
            headers["X-Hub-Signature"] = signature(sub.secret, body.data)
        for attempt, delay in enumerate((0.0, *self.retry_s), start=1):
            await asyncio.sleep(delay)
            if sub.expires <= self.clock():
                return
            try:
                check_literal(sub.callback, self.allow)
                async with self._session.post(sub.callback, data=body.data, headers=headers,
                                              allow_redirects=False) as answer:
                    status = answer.status
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            else:
                error = None
            if status is not None and 200 <= status < 300:
                log.info("websub_delivered", topic=sub.topic, callback=sub.callback, attempt=attempt, status=status)
                return
            if status == 410:
                self.store.remove(sub.topic, sub.callback)
                log.info("websub_subscriber_gone", topic=sub.topic, callback=sub.callback)
                return
            log.warning("websub_delivery_failed", topic=sub.topic, callback=sub.callback, attempt=attempt,
                        status=status, error=error)
        log.error("websub_delivery_given_up", topic=sub.topic, callback=sub.callback, attempts=1 + len(self.retry_s))
