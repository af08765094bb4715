"""The HTTP ingest API the CMS calls: articles, kills and withdrawals in, article events out.

    POST /v1/articles                        an article JSON document (docs/article-json.md)
    POST /v1/articles/{article_id}/kill      {"reason": "..."}
    POST /v1/articles/{article_id}/withdraw  {"reason": "..."}
    GET  /healthz, /readyz                   whether Kafka answers: 200, or 503 (no token needed)
    GET  /metrics                            Prometheus: requests by route and status, latency (no token)

Every POST needs ``Authorization: Bearer <token>``, one of the comma-separated tokens in
``NEWSWIRE_INGEST_TOKENS``; the token is compared with every configured token in constant
time and never logged. The answer is 202 ``{event_id, article_id, version, event_type,
topic, partition, offset, duplicate: false}`` only once Kafka acknowledged the write (acks=all,
idempotent producer).

Each article version is published once (producers/once.py): the same version with the same
content again answers 200 with the stored event (``duplicate: true``) and writes nothing; a
version the topic already has with other content, an older version, or any version of a killed
story is 409, naming the article, the version sent and the latest version on the topic. An
``Idempotency-Key`` header (1-255 visible ASCII characters) is kept with the event it made: the
same request again (also a kill or withdrawal) answers 200 with that event; another request
with the same key is 422. Requests for one article are handled one at a time in a process.
Otherwise: 400 malformed JSON or invalid UTF-8, 401 missing or wrong token, 404 kill/withdraw
of an unknown article, 408 body not received within the body timeout (15 s by default; the
connection is then closed), 413 body over the size limit, 415 not ``application/json``, 422
field errors, 503 Kafka down or not confirming. Every error body is
``{"errors": [{"field": ..., "problem": ...}]}``.

kafka-python is synchronous: sends and look-ups run in the default executor's threads, through
one producer shared by all requests (:class:`SharedProducer`). A request waits for Kafka at most
``NEWSWIRE_PRODUCER_TIMEOUT`` seconds (+ ``ANSWER_GRACE_S``), then gets 503 (the story is not known to be published;
sending it again is safe). A producer whose write failed is replaced by a fresh one: kafka-python
cannot recover a producer whose batch expired while the broker was away (it lacks the Java
client's epoch bump, KIP-360), so a kept one would answer 503 for ever after an outage. While
Kafka is away, a new producer is tried at most every ``RECONNECT_PAUSE_S`` seconds, by one
request at a time; the others get 503 at once.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import threading
import time
import weakref
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import click
from aiohttp import web
from kafka import KafkaProducer

from newswire import bus, logs, metrics
from newswire.broker import broker_answers
from newswire.config import Settings

from .article import ARTICLE_ID, ARTICLE_ID_PROBLEM, MAX_DOCUMENT_BYTES, ArticleError, FieldError, build_event, decode_document
from .latest import ArticleLogs, ArticleNotFound, key_headers
from .once import Refused, Submission
from .publish import KafkaUnavailable, Published, connect, end_of_article, publish, publish_once

log = logs.get(__name__)

TOKENS_ENV = "NEWSWIRE_INGEST_TOKENS"
REALM = 'Bearer realm="newswire-ingest"'
SETTINGS = web.AppKey("settings", Settings)
TOKENS = web.AppKey("tokens", tuple)
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)
#: per article id, the lock its requests take in turn (kept while a request holds it)
LOCKS = web.AppKey("locks", weakref.WeakValueDictionary)
#: where each article's last event is on the topic, kept up to date from it (producers/latest.py)
LOOKUPS = web.AppKey("lookups", ArticleLogs)
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")
#: seconds a client has to send its whole request body (a slow body holds a connection)
BODY_TIMEOUT_S = 15.0
#: seconds the rest of a refused request's body is read (and dropped) before the connection is closed
LINGERING_S = 2.0
PRODUCER = web.AppKey("producer", object)
HEALTH = web.AppKey("health", object)
#: what the access log line says about the request's article (article_id, version, event_id)
ABOUT = web.RequestKey("about", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


def tokens_from_env(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    raw = (os.environ if environ is None else environ).get(TOKENS_ENV, "")
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def errors(status: int, problems: Sequence[FieldError], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errors": [p.as_dict() for p in problems]}, status=status, headers=headers)


#: while Kafka is away, how often a request may try a new producer (the others get 503 at once)
RECONNECT_PAUSE_S = 1.0
#: a request is answered at most this long after the producer's own timeout (NEWSWIRE_PRODUCER_TIMEOUT)
ANSWER_GRACE_S = 1.0
#: how long ``/healthz`` may wait for Kafka, and for how long its answer is reused
HEALTH_TIMEOUT_S = 2.0
HEALTH_CACHE_S = 1.0


class SharedProducer:
    """One KafkaProducer for the whole app, connected on first use (so the API starts, and
    answers 503, while Kafka is down), replaced after a failed write, closed with the app.

    Thread-safe: requests run in the executor's threads. Only one of them connects at a time.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._kafka: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._connecting = False
        self._failed_at = float("-inf")
        self._problem = ""

    def get(self) -> KafkaProducer:
        """The producer; KafkaUnavailable at once while another request connects, or Kafka
        failed less than RECONNECT_PAUSE_S ago."""
        with self._lock:
            if self._kafka is not None:
                return self._kafka
            if self._connecting or time.monotonic() - self._failed_at < RECONNECT_PAUSE_S:
                raise KafkaUnavailable(self._problem or f"connecting to Kafka at {self.settings.bootstrap_servers}")
            self._connecting = True
        try:
            kafka = connect(self.settings)
        except KafkaUnavailable as exc:
            self._failed(str(exc))
            raise
        with self._lock:
            self._kafka, self._connecting = kafka, False
        log.info("ingest_producer_connected", bootstrap=self.settings.bootstrap_servers)
        return kafka

    def _failed(self, problem: str) -> None:
        with self._lock:
            self._connecting, self._failed_at, self._problem = False, time.monotonic(), problem

    def discard(self, kafka: KafkaProducer, problem: str) -> None:
        """A write through ``kafka`` failed: the next request gets a new producer."""
        with self._lock:
            if self._kafka is not kafka:  # another request replaced it already
                return
            self._kafka = None
        self._failed(problem)
        log.warning("ingest_producer_replaced", bootstrap=self.settings.bootstrap_servers, reason=problem)
        bus.close_now(kafka)

    def using(self, write: Callable[[KafkaProducer], T]) -> T:
        """``write(producer)`` (in an executor thread); a producer whose write failed
        (KafkaUnavailable) is replaced."""
        kafka = self.get()
        try:
            return write(kafka)
        except KafkaUnavailable as exc:
            self.discard(kafka, str(exc))
            raise

    def close(self) -> None:
        with self._lock:
            if self._kafka is not None:
                self._kafka.close(timeout=self.settings.producer_timeout_s)
                self._kafka = None


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One structured line per request: what, for which article and event, how it ended (no token)."""
    started = time.perf_counter()
    status = 500
    request[ABOUT] = about = {}
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = request.match_info.route.resource
        route = route.canonical if route is not None else "unmatched"  # a bounded set of label values
        metrics.INGEST_REQUESTS.labels(request.method, route, str(status)).inc()
        metrics.INGEST_SECONDS.labels(request.method, route).observe(elapsed)
        log.info("ingest_request", method=request.method, path=request.path, status=status,
                 article_id=about.get("article_id"), version=about.get("version"),
                 event_id=about.get("event_id"), remote=request.remote,
                 duration_ms=round(elapsed * 1000, 1))


#: what a probe or Prometheus reads without a token (nothing in them is secret)
UNAUTHENTICATED = ("/healthz", "/readyz", "/metrics")


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in UNAUTHENTICATED:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return errors(401, [FieldError("Authorization", "a bearer token is required")], {"WWW-Authenticate": REALM})
    presented = token.strip().encode()
    # compare with every configured token (no early exit), each in constant time
    matches = [hmac.compare_digest(presented, known.encode()) for known in request.app[TOKENS]]
    if not any(matches):
        return errors(401, [FieldError("Authorization", "the bearer token is not valid")],
                      {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
    return await handler(request)


async def _document(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or the error response (415, 413, 400)."""
    if request.content_type != "application/json":
        return errors(415, [FieldError("Content-Type", f"must be application/json, not {request.content_type}")])
    charset = request.charset
    if charset and charset.lower() not in ("utf-8", "utf8"):
        return errors(415, [FieldError("Content-Type", f"charset must be utf-8, not {charset}")])
    timeout_s = request.app[BODY_TIMEOUT]
    try:
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return errors(413, [FieldError("$", f"request body is over {MAX_DOCUMENT_BYTES} bytes")])
    except TimeoutError:
        log.warning("ingest_body_timeout", path=request.path, remote=request.remote, timeout_s=timeout_s)
        response = errors(408, [FieldError("$", f"the request body did not arrive within {timeout_s:g} s")])
        response.force_close()
        return response
    try:
        return decode_document(raw)
    except ArticleError as exc:
        return errors(400, exc.errors)


def _idempotency_key(request: web.Request) -> str | None | web.Response:
    """The request's Idempotency-Key (None without one), or the 400 response."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        return errors(400, [FieldError("Idempotency-Key", "must be 1 to 255 visible ASCII characters")])
    return key


def _article_lock(app: web.Application, article_id: str) -> asyncio.Lock:
    lock = app[LOCKS].get(article_id)
    if lock is None:
        lock = app[LOCKS][article_id] = asyncio.Lock()
    return lock


async def _run(func: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


async def _write(app: web.Application, write: Callable[[KafkaProducer], T]) -> T:
    """``write(producer)`` through the shared producer, given up (KafkaUnavailable) after
    NEWSWIRE_PRODUCER_TIMEOUT + ANSWER_GRACE_S. A write that outlives the answer still ends in its
    thread (and replaces a failed producer)."""
    timeout_s = app[SETTINGS].producer_timeout_s + ANSWER_GRACE_S
    work = asyncio.ensure_future(_run(app[PRODUCER].using, write))
    work.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no "never retrieved"
    try:
        return await asyncio.wait_for(asyncio.shield(work), timeout_s)
    except TimeoutError:
        raise KafkaUnavailable(f"Kafka at {app[SETTINGS].bootstrap_servers} did not confirm within {timeout_s:g} s"
                               ) from None


def _unavailable(exc: KafkaUnavailable, article_id: str, event_id: str | None = None) -> web.Response:
    """503 with Retry-After: nothing was published (a look-up or the write could not reach Kafka)."""
    log.error("ingest_kafka_unavailable", article_id=article_id, event_id=event_id, reason=str(exc))
    return errors(503, [FieldError("kafka", f"not published: {exc}")], {"Retry-After": "5"})


async def _publish(request: web.Request, submission: Submission) -> web.Response:
    """Publish once (the caller holds the article's lock)."""
    event, app = submission.event, request.app
    request[ABOUT].update(article_id=event["article_id"], version=event["version"])
    try:
        (result,) = await _write(app, lambda kafka: publish_once(app[SETTINGS], [submission], kafka, app[LOOKUPS]))
    except KafkaUnavailable as exc:
        return _unavailable(exc, event["article_id"], event["event_id"])
    return _answer(request, result)


def _answer(request: web.Request, result: Published | Refused) -> web.Response:
    if isinstance(result, Refused):
        return errors(result.status, [result.error])
    request[ABOUT]["event_id"] = result.event["event_id"]
    return web.json_response(_accepted(result), status=200 if result.duplicate else 202)


def _accepted(published: Published) -> dict[str, Any]:
    e = published.event
    return {"event_id": e["event_id"], "article_id": e["article_id"], "version": e["version"],
            "event_type": e["event_type"], "topic": published.topic, "partition": published.partition,
            "offset": published.offset, "duplicate": published.duplicate}


async def post_article(request: web.Request) -> web.Response:
    key = _idempotency_key(request)
    if isinstance(key, web.Response):
        return key
    document = await _document(request)
    if isinstance(document, web.Response):
        return document
    if isinstance(document.get("article_id"), str):
        request[ABOUT]["article_id"] = document["article_id"]
    try:
        event = build_event(document, request.app[SETTINGS])
    except ArticleError as exc:
        log.info("article_rejected", article_id=request[ABOUT].get("article_id"), errors=[str(e) for e in exc.errors])
        return errors(422, exc.errors)
    async with _article_lock(request.app, event["article_id"]):
        return await _publish(request, Submission.of(document, event, key))


def end_handler(event_type: str) -> Handler:
    async def post_end(request: web.Request) -> web.Response:
        article_id = request.match_info["article_id"]
        request[ABOUT]["article_id"] = article_id
        if not ARTICLE_ID.fullmatch(article_id):
            return errors(422, [FieldError("article_id", ARTICLE_ID_PROBLEM)])
        key = _idempotency_key(request)
        if isinstance(key, web.Response):
            return key
        document = await _document(request)
        if isinstance(document, web.Response):
            return document
        unknown = [FieldError(k, "unknown field") for k in sorted(set(document) - {"reason"})]
        reason = document.get("reason")
        if not isinstance(reason, str):
            unknown.append(FieldError("reason", "is required: a string saying why"))
        if unknown:
            return errors(422, unknown)
        async with _article_lock(request.app, article_id):
            return await _end(request, article_id, reason, event_type, key)
    return post_end


async def _end(request: web.Request, article_id: str, reason: str, event_type: str, key: str | None
               ) -> web.Response:
    """The kill or withdrawal (the caller holds the article's lock)."""
    app = request.app
    try:
        made = await _run(end_of_article, app[SETTINGS], article_id, reason, event_type, key, app[LOOKUPS])
    except ArticleNotFound as exc:
        return errors(404, [FieldError("article_id", str(exc))])
    except ArticleError as exc:
        return errors(422, exc.errors)
    except Refused as refused:
        return _answer(request, refused)
    except KafkaUnavailable as exc:
        return _unavailable(exc, article_id)
    if isinstance(made, Published):  # the same request again
        return _answer(request, made)
    request[ABOUT]["version"] = made["version"]
    try:
        (published,) = await _write(app, lambda kafka: publish(app[SETTINGS], [made], kafka, [key_headers(key)]))
    except KafkaUnavailable as exc:
        return _unavailable(exc, article_id, made["event_id"])
    return _answer(request, published)


class KafkaHealth:
    """Whether Kafka answers an admin call now (asked at most every HEALTH_CACHE_S seconds)."""

    def __init__(self, settings: Settings):
        self.bootstrap = settings.bootstrap_servers
        self._answer: tuple[float, bool] | None = None

    async def answers(self) -> bool:
        now = time.monotonic()
        if self._answer is None or now - self._answer[0] > HEALTH_CACHE_S:
            self._answer = (now, await _run(broker_answers, self.bootstrap, HEALTH_TIMEOUT_S))
        return self._answer[1]


async def healthz(request: web.Request) -> web.Response:
    """200 ``{"status": "ok", "kafka_connected": true}`` while Kafka answers; 503 with
    ``"kafka_unreachable"`` and ``false`` when it does not (a story would get 503 too)."""
    if await request.app[HEALTH].answers():
        return web.json_response({"status": "ok", "kafka_connected": True})
    return web.json_response({"status": "kafka_unreachable", "kafka_connected": False,
                              "bootstrap": request.app[SETTINGS].bootstrap_servers}, status=503)


async def metrics_page(_: web.Request) -> web.Response:
    """Prometheus metrics: requests by route and status, answer times."""
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def create_app(settings: Settings, tokens: Sequence[str], *, body_timeout_s: float = BODY_TIMEOUT_S
               ) -> web.Application:
    """The ingest application. ``tokens``: the accepted bearer tokens (at least one);
    ``body_timeout_s``: how long a client has to send a request body (then 408, connection closed)."""
    if not tokens:
        raise ValueError(f"no ingest tokens configured: set {TOKENS_ENV} (comma-separated)")
    app = web.Application(client_max_size=MAX_DOCUMENT_BYTES, middlewares=[access_log, bearer_auth],
                          handler_args={"lingering_time": LINGERING_S})
    app[SETTINGS] = settings
    app[TOKENS] = tuple(tokens)
    app[BODY_TIMEOUT] = float(body_timeout_s)
    app[LOCKS] = weakref.WeakValueDictionary()
    app[LOOKUPS] = ArticleLogs(settings)
    app[PRODUCER] = SharedProducer(settings)
    app[HEALTH] = KafkaHealth(settings)
    app.router.add_post("/v1/articles", post_article)
    app.router.add_post("/v1/articles/{article_id}/kill", end_handler("killed"))
    app.router.add_post("/v1/articles/{article_id}/withdraw", end_handler("withdrawn"))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics_page)

    async def close_kafka(app: web.Application) -> None:
        await _run(app[PRODUCER].close)
        await _run(app[LOOKUPS].close)

    app.on_cleanup.append(close_kafka)
    return app


@click.group("ingest")
def ingest() -> None:
    """The HTTP ingest API for the CMS (articles, kills, withdrawals)."""


@ingest.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--body-timeout", default=BODY_TIMEOUT_S, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a client has to send a request body; then 408 and the connection is closed.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, body_timeout: float) -> None:
    """Serve the ingest API; bearer tokens come from NEWSWIRE_INGEST_TOKENS (comma-separated)."""
    settings: Settings = ctx.find_root().obj
    try:
        app = create_app(settings, tokens_from_env(), body_timeout_s=body_timeout)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    log.info("ingest_serving", host=host, port=port, topic=settings.topics.articles,
             bootstrap=settings.bootstrap_servers, provider=settings.provider)  # None: articles must name theirs
    web.run_app(app, host=host, port=port, access_log=None, print=None)
