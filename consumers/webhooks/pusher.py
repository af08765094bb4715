"""The pusher: article events from Kafka to partners' webhooks.

Two sides in one process. The Kafka consume loop (:class:`newswire.bus.EventLoop`, its own
thread, consumer group ``newswire-webhooks``) queues deliveries in the outbox
(:class:`.outbox.Enqueuer`) and commits them before its offsets. The asyncio side runs one
:class:`PartnerWorker` per partner in one event loop: each has its own HTTP client,
concurrency limit, rate limit, circuit breaker and ``Retry-After`` pause, and reads only its
own partner's deliveries, so a slow, failing or down partner never delays another one.
Waiting on a rate limit, an open circuit or a ``Retry-After`` sends nothing and spends no
attempt. Every attempt is recorded (:func:`.outbox.record`) before the next one of that
article may go; nothing pending lives only in memory, so a restart, even after kill -9,
resumes every retry where it was, with the same ``webhook-id``. A drop-folder partner
(``file:///dir``, see :mod:`.drop`) goes through the same worker; its attempts write files.

On SQLite (one pusher per file) a process runs workers for every partner; pushers sharing a
PostgreSQL state each run them for the partners they hold the lease of (:mod:`.leases`).
Every pusher's Kafka side queues for every partner.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from kafka.errors import KafkaError

from newswire import bus, disk, locks, logs, metrics
from newswire.config import Settings
from newswire.loop_thread import LoopThread
from newswire.consumers.webhooks import delivery, dialect, drop, leases, outbox, policy, signing, ssrf, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.outbox import Attempt
from newswire.consumers.webhooks.partners import Partner

log = logs.get(__name__)

#: how long a stopping pusher waits for the Kafka consume loop to leave its group and close
KAFKA_CLOSE_WAIT_S = 10.0


class PusherBusy(RuntimeError):
    """Another pusher runs on the same state file (one pusher per state file)."""


class PusherFailed(RuntimeError):
    """The pusher cannot go on (its Kafka consume loop stopped on an error): the process should end."""


class DeadLetters:
    """Deliveries whose retries are used up go to the dead-letter topic: the event as read
    from Kafka, with the partner, attempts and last error in the headers."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.kafka = bus.producer(settings, client_id="newswire-webhooks-dlq")

    def send(self, row: sqlite3.Row, avro: bytes, reason: str) -> None:
        headers = [(k, str(v).encode()) for k, v in (
            ("dlq.reason", reason[:2000]), ("dlq.consumer", "newswire-webhooks"), ("event_id", row["event_id"]),
            ("event_type", row["event_type"]), ("webhook.partner", row["partner_id"]),
            ("webhook.delivery_id", row["id"]), ("webhook.seq", row["seq"]), ("webhook.version", row["version"]),
            ("webhook.attempts", row["tries"] + 1), ("webhook.last_status", row["last_status"] or "-"))]
        future = self.kafka.send(self.settings.topics.dead_letter, key=row["article_id"].encode(), value=avro,
                                 headers=headers)
        future.get(timeout=self.settings.producer_timeout_s)

    def close(self) -> None:
        self.kafka.close(timeout=self.settings.producer_timeout_s)


class Recorder:
    """Group commit of attempts, off the event loop: attempts that finish while a commit is
    being written are written together in the next one, by a thread of its own (with its own
    connection), so that the loop keeps sending while SQLite waits for its lock or the disk.
    Each attempt waits for its commit before its article may send again, so a crash can never
    let a newer version out while an older one's outcome is not on disk."""

    def __init__(self, settings: Settings):
        self.path = store.path_of(settings)
        self.db = store.connect(settings, synchronous="NORMAL")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhooks-receipts")
        self.pending: list[tuple[sqlite3.Row, Attempt, float, asyncio.Future]] = []
        self.flushing = False

    async def record(self, row: sqlite3.Row, attempt: Attempt) -> None:
        done = asyncio.get_running_loop().create_future()
        self.pending.append((row, attempt, time.time(), done))
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._flush()))
        await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    await self._write(loop, [(row, attempt, at) for row, attempt, at, _ in batch])
                except Exception as exc:
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for *_, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self.flushing = False

    async def _write(self, loop: asyncio.AbstractEventLoop, attempts: list) -> None:
        """Record ``attempts``; on a full disk, wait and try again (their articles send nothing
        meanwhile: each waits for its attempt to be recorded)."""
        waits = disk.DiskFullWaits("webhooks", self.path, attempts=len(attempts))
        while True:
            try:
                await loop.run_in_executor(self.executor, outbox.record, self.db, attempts)
                break
            except Exception as exc:
                if (delay := waits.failed(exc)) is None:
                    raise
            await asyncio.sleep(delay)
        waits.resolved()

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.db.close()


class PartnerWorker:
    """Sends one partner's deliveries: heads of their article, due, within its limits."""

    def __init__(self, pusher: "Pusher", partner: Partner):
        self.pusher = pusher
        self.config = pusher.config
        self.partner = partner
        self.breaker = policy.CircuitBreaker(self.config.breaker_failures, self.config.breaker_cooldown_s)
        self.rate = policy.RateLimit(partner.rate_limit)
        self.resolver = ssrf.GuardedResolver(self.allow)
        self.client = delivery.session(self.resolver, self.config.timeout_s)
        self.inflight: dict[str, asyncio.Task] = {}
        self.paused_until = 0.0
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        #: set by close(): the loop ends by itself even where Python 3.11's asyncio.wait_for
        #: swallows the cancellation that races with a wake-up
        self.closing = False

    @property
    def allow(self):
        return self.partner.allowed(self.config.allow_cidrs)

    def update(self, partner: Partner) -> None:
        if partner.rate_limit != self.partner.rate_limit:
            self.rate = policy.RateLimit(partner.rate_limit)
        self.partner = partner
        self.resolver.allow = self.allow
        self.wake.set()

    async def run(self) -> None:
        db = self.pusher.db
        while not self.closing:
            self.wake.clear()
            timeout = self.config.poll_s
            now = time.time()
            if not self.partner.enabled:
                pass
            elif not self.pusher.may_send(self.partner.id):  # its lease is not certain (yet, or any more)
                timeout = min(timeout, 0.1)
            elif now < self.paused_until:
                timeout = min(timeout, self.paused_until - now)
            else:
                room = min(self.breaker.capacity(self.partner.concurrency),
                           self.partner.concurrency - len(self.inflight))
                if room > 0:
                    rows = outbox.due(db, self.partner.id, now=now, busy=self.inflight, limit=room)
                    for row in rows:
                        await self.rate.acquire()
                        if not self.pusher.may_send(self.partner.id):
                            break
                        self.breaker.sending()
                        self.inflight[row["article_id"]] = asyncio.create_task(self._send(row))
                    if rows:
                        continue
                    upcoming = outbox.next_due_at(db, self.partner.id, now=now)
                    if upcoming is not None:
                        timeout = min(timeout, max(0.005, upcoming - now))
                elif not self.inflight:
                    timeout = min(timeout, max(0.005, self.breaker.wait_s()))
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _send(self, row: sqlite3.Row) -> None:
        partner = self.partner
        try:
            if drop.is_drop(partner.url):  # a drop-folder partner: a file instead of a POST
                fmt = next(f for f, t in registry.FORMATS.items() if t == row["content_type"])
                response = await drop.deliver(partner.url, fmt, seq=row["seq"], article_id=row["article_id"],
                                              version=row["version"], payload=row["payload"])
            else:
                headers = signing.headers(row["event_id"], row["payload"], partner.secrets,
                                          content_type=row["content_type"], seq=row["seq"])
                response = await delivery.post(self.client, partner.url, row["payload"], headers,
                                               allow=self.allow, timeout_s=self.config.timeout_s)
            attempt = await self._judge(row, response)
            await self.pusher.recorder.record(row, attempt)
            metrics.DELIVERIES.labels(partner.id, attempt.outcome).inc()
            if attempt.outcome == "delivered":
                metrics.QUEUED_TO_PARTNER.labels(partner.id).observe(max(0.0, time.time() - row["created_at"]))
            log_at = log.info if attempt.outcome == "delivered" else log.warning
            log_at("delivery_" + attempt.outcome, partner=partner.id, article_id=row["article_id"],
                   version=row["version"], event_id=row["event_id"], seq=row["seq"], attempt=row["tries"] + 1,
                   status=response.status, error=response.error, duration_ms=round(response.duration_ms, 1),
                   next_attempt_at=attempt.next_attempt_at)
        except Exception:  # a bug here must not kill the worker; the delivery stays pending
            self.breaker.inconclusive()
            log.exception("delivery_crashed", partner=partner.id, article_id=row["article_id"],
                          event_id=row["event_id"])
        finally:
            self.inflight.pop(row["article_id"], None)
            self.wake.set()

    async def _judge(self, row: sqlite3.Row, response: delivery.Response) -> Attempt:
        now = time.time()
        common = dict(status_code=response.status, duration_ms=response.duration_ms, error=response.error)
        if response.ok:
            self.breaker.success()
            return Attempt(outcome="delivered", next_attempt_at=None, **common)
        if response.gone:
            self.breaker.success()  # the endpoint answered; it asked us to stop
            reason = f"410 Gone from {self.partner.url} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}"
            self.partner = replace(self.partner, enabled=False, disabled_reason=reason)
            registry.disable(self.pusher.db, self.partner.id, reason)
            return Attempt(outcome="gone", next_attempt_at=now, spent=False, **common)
        if response.retry_after is not None:
            self.breaker.inconclusive()
            wait = min(response.retry_after, self.config.max_retry_after_s)
            self.paused_until = max(self.paused_until, now + wait)
            return Attempt(outcome="throttled", next_attempt_at=now + wait, spent=False, **common)
        if self.breaker.failure():
            log.warning("circuit_opened", partner=self.partner.id, failures=self.breaker.consecutive,
                        cooldown_s=self.config.breaker_cooldown_s)
        delay = policy.backoff(self.config.schedule, row["attempts"] + 1, self.config.jitter)
        if delay is not None:
            return Attempt(outcome="retry", next_attempt_at=now + delay, **common)
        reason = f"gave up after {row['attempts'] + 1} attempts: {response.error}"
        try:
            avro = outbox.event_avro(self.pusher.db, row["event_id"])
            await asyncio.get_running_loop().run_in_executor(None, self.pusher.dead_letters.send, row, avro, reason)
        except (KafkaError, OSError) as exc:  # the state file still says dead: `deliveries redrive` works
            log.error("dead_letter_failed", partner=self.partner.id, event_id=row["event_id"], error=str(exc))
        return Attempt(outcome="dead", next_attempt_at=None, **common)

    async def close(self) -> None:
        """Send nothing new; let what is in flight finish and be recorded (within a timeout),
        so that a clean stop leaves nothing to send twice."""
        self.closing = True
        self.wake.set()
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        inflight = list(self.inflight.values())
        if inflight:
            _, late = await asyncio.wait(inflight, timeout=self.config.timeout_s + 1)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.client.close()


class Pusher:
    """All partner workers in one asyncio loop, following the registry as operators change it."""

    def __init__(self, settings: Settings, config: WebhookConfig):
        self.settings = settings
        self.config = config
        self.db = store.connect(settings, synchronous="NORMAL")
        self.dead_letters = DeadLetters(settings)
        self.recorder = Recorder(settings)
        self.workers: dict[str, PartnerWorker] = {}
        self.leases: leases.Leases | None = None
        #: partners whose worker is closing before their lease is let go, and that closing
        self.leaving: dict[str, asyncio.Task] = {}

    def may_send(self, partner_id: str) -> bool:
        """Whether this process may start an attempt for the partner (see :meth:`.leases.Leases.holds`)."""
        return self.leases is None or self.leases.holds(partner_id)

    def notify(self, partner_ids: set[str]) -> None:
        """New deliveries for these partners are in the outbox (called in the loop's thread)."""
        for pid in partner_ids:
            if worker := self.workers.get(pid):
                worker.wake.set()

    def refresh(self) -> None:
        owned = self.leases.owned() if self.leases else None
        for pid in [pid for pid in self.workers if owned is not None and pid not in owned]:
            self._let_go(pid)
        for partner in registry.all_partners(self.db):
            if owned is not None and (partner.id not in owned or partner.id in self.leaving):
                continue  # another pusher sends for it
            worker = self.workers.get(partner.id)
            if worker is None:
                worker = self.workers[partner.id] = PartnerWorker(self, partner)
                worker.task = asyncio.create_task(worker.run(), name=f"partner-{partner.id}")
                log.info("partner_worker_started", partner=partner.id, url=partner.url, enabled=partner.enabled)
                if drop.is_drop(partner.url):
                    for temp in drop.remove_leftovers(partner.url):
                        log.warning("drop_temp_removed", partner=partner.id, path=str(temp))
            elif worker.partner != partner:
                worker.update(partner)

    def _let_go(self, partner_id: str) -> None:
        """Stop sending for a partner (what is in flight finishes and is recorded), then give up its lease."""
        worker = self.workers.pop(partner_id)
        log.info("partner_worker_stopping", partner=partner_id, reason="lease let go")

        async def close() -> None:
            try:
                await worker.close()
            finally:
                del self.leaving[partner_id]
                if self.leases:
                    self.leases.let_go(partner_id)
        self.leaving[partner_id] = asyncio.ensure_future(close())

    async def run(self, stop: asyncio.Event, kafka_alive=lambda: True) -> None:
        if store.shared(self.settings):  # on SQLite, the file's lock makes this pusher the only one
            self.leases = leases.Leases(self.settings, lease_s=self.config.lease_s,
                                        quiet_s=self.config.timeout_s + self.config.lease_s)
        try:
            while not stop.is_set():
                try:
                    self.refresh()
                except dialect.StateAway as exc:  # its supervisor starts it again, connected anew
                    raise PusherFailed(str(exc)) from exc
                if not kafka_alive():
                    raise PusherFailed("the Kafka consume loop stopped")
                try:
                    await asyncio.wait_for(stop.wait(), self.config.poll_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            await asyncio.gather(*(w.close() for w in self.workers.values()))
            await asyncio.gather(*self.leaving.values(), return_exceptions=True)  # workers handed over meanwhile
            if self.leases:
                self.leases.close()
            await asyncio.get_running_loop().run_in_executor(None, self.dead_letters.close)
            self.recorder.close()
            self.db.close()


async def serve(settings: Settings, config: WebhookConfig, stop: asyncio.Event | None = None) -> None:
    """Run the pusher until ``stop`` is set (or SIGTERM/SIGINT in the main thread).

    Raises :class:`PusherBusy` at once when another pusher holds the state file's lock (SQLite:
    one pusher per file; a PostgreSQL state takes any number, see :mod:`.leases`).
    """
    if store.shared(settings):
        await _serve(settings, config, stop)
        return
    try:
        lock = locks.hold_lock(store.lock_path(settings))
    except locks.LockHeld as exc:
        raise PusherBusy(f"a pusher (pid {exc.pid}) already runs on {store.path_of(settings)} (one per SQLite "
                         f"file; several pushers share a PostgreSQL state: NEWSWIRE_STATE_URL)") from None
    try:
        await _serve(settings, config, stop)
    finally:
        lock.close()


async def _serve(settings: Settings, config: WebhookConfig, stop: asyncio.Event | None) -> None:
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    pusher = Pusher(settings, config)
    def wake(partner_ids: set[str]) -> None:  # in the Kafka thread, after the outbox commit
        if not loop.is_closed():
            loop.call_soon_threadsafe(pusher.notify, partner_ids)

    enqueuer = outbox.Enqueuer(settings, on_committed=wake)
    consume = bus.EventLoop(settings, config.group_id, enqueuer.handle, before_commit=enqueuer.commit,
                            name="webhooks", state=store.path_of(settings), **_membership(settings, config))
    failure: list[BaseException] = []

    def consume_forever() -> None:
        try:
            consume.run()
        except BaseException as exc:  # reported by the asyncio side, which then stops
            failure.append(exc)
            log.exception("kafka_loop_failed", consumer="webhooks")
        finally:
            enqueuer.close()

    thread = threading.Thread(target=consume_forever, name="webhooks-kafka", daemon=True)
    thread.start()
    log.info("pusher_started", group=config.group_id, attempts=config.max_attempts, timeout_s=config.timeout_s)
    try:
        await pusher.run(stop, kafka_alive=thread.is_alive)
    except PusherFailed:
        if not failure:
            raise
    finally:
        consume.stop()
        # Joining a consumer group can take a session timeout (a member killed with -9 is still in
        # it); the outbox is durable and a re-read event is not queued twice, so do not wait long.
        await loop.run_in_executor(None, thread.join, KAFKA_CLOSE_WAIT_S)
        log.info("pusher_stopped", kafka_loop_closed=not thread.is_alive())
    if failure:
        raise PusherFailed(f"the Kafka consume loop failed: {type(failure[0]).__name__}: {failure[0]}") \
            from failure[0]


def _membership(settings: Settings, config: WebhookConfig) -> dict:
    """How the pusher's Kafka side is a member of its group.

    One pusher per SQLite file: a static member, which a restart after a crash puts back at
    once. Pushers sharing a PostgreSQL state: ordinary members, with a short session, so that
    a killed one's partitions go to the others within seconds (they queue for every partner).
    """
    if store.shared(settings):
        return {"consumer_overrides": {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 2_000}}
    return {"instance_id": bus.instance_id(config.group_id, store.path_of(settings))}


class Running(LoopThread):
    """The pusher run in a background thread with its own event loop (tests, benchmarks, demo)."""

    def __init__(self, settings: Settings, config: WebhookConfig):
        super().__init__(lambda stop: serve(settings, config, stop), name="pusher")
