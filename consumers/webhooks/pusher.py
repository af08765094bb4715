"""The pusher: article events from Kafka to partners' webhooks.

Two sides, each in a process of its own (:mod:`.queueing` says why). The Kafka consume loop
(:class:`newswire.bus.EventLoop`, consumer group ``newswire-webhooks``, in a child process)
queues deliveries in the outbox (:class:`.outbox.Enqueuer`), commits them before its offsets
and then tells the asyncio side, which runs in the pusher's own process. The asyncio side, one
:class:`Dispatcher`, keeps what is pending in one in-memory schedule fed by the store in
batches, and sends through one HTTP connection pool (:mod:`.transports`). Each partner keeps
its own concurrency limit, rate limit, circuit breaker and ``Retry-After`` pause (the pause is
kept in the store too, so a restarted pusher honours it), so a slow, failing or down partner
never delays another one. Waiting on a rate limit, an open circuit or a ``Retry-After`` sends
nothing and spends no attempt. Every attempt is recorded (:func:`.outbox.record`, in group
commits) before the next one of that article may go; nothing pending lives only in memory, so
a restart, even after kill -9, resumes every retry where it was, with the same
``webhook-id``. A drop-folder partner (``file:///dir``) goes through the same dispatcher; its
transport writes files.

A partner that pulls its deliveries (:mod:`.pull`) has none in the schedule; a strict
partner's go one at a time by number (:mod:`.ordering`).

On SQLite (one pusher per file) the dispatcher sends for every partner. Pushers sharing a
PostgreSQL state each keep in their schedule, and send for, only the partners they hold the
lease of (:mod:`.leases`); every pusher's Kafka side queues for every partner.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import signal
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable
from urllib.parse import urlsplit

from kafka.errors import KafkaError

from newswire import bus, disk, heap, locks, logs, metrics
from newswire.config import Settings
from newswire.loop_thread import LoopThread
from newswire.consumers.webhooks import delivery, dialect, leases, ordering, outbox, payloads, policy, retention, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.outbox import Attempt
from newswire.consumers.webhooks.partners import Partner
from newswire.consumers.webhooks.queueing import QueueingFailed, QueueingProcess
from newswire.consumers.webhooks.transports import Outgoing, Transport, Transports

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

    def send(self, row: outbox.Pending, avro: bytes, reason: str) -> None:
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
        self.pending: list[tuple[outbox.Pending, Attempt, float, asyncio.Future]] = []
        self.flushing = False

    async def record(self, row: outbox.Pending, attempt: Attempt) -> None:
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


_entries = itertools.count()


class PartnerState:
    """One partner's part of the schedule: its pending deliveries by article (oldest version
    first; only the first, the head, may go), the heads not in flight by due time, what is in
    flight, and its limits (concurrency, rate, circuit breaker, ``Retry-After`` pause)."""

    def __init__(self, partner: Partner, config: WebhookConfig, transport: Transport):
        self.config = config
        self.breaker = policy.CircuitBreaker(config.breaker_failures, config.breaker_cooldown_s)
        self.articles: dict[str, list[outbox.Pending]] = {}
        #: (due, id, entry number, delivery): a delivery may be in twice (the later one is skipped)
        self.ready: list[tuple[float, int, int, outbox.Pending]] = []
        #: its articles with an attempt not yet recorded (none of them may send again until it is)
        self.inflight: set[str] = set()
        #: its requests open now, what its concurrency limits (an answered attempt's article
        #: stays in ``inflight`` until the attempt is recorded, but takes no request)
        self.sending = 0
        #: when the dispatcher has a timer set to look at this partner again
        self.check_at: float | None = None
        self.paused_until = 0.0
        self.partner = partner
        self.rate = policy.RateLimit(partner.rate_limit)
        #: its metrics' labelled children, looked up once
        self._counters: dict[str, object] = {}
        #: a strict partner's line (:mod:`.ordering`; None: per article)
        self.line: ordering.StrictLine | None = None
        self.update(partner, transport)

    def counted(self, outcome: str):
        """The partner's ``newswire_deliveries_total`` child for ``outcome``."""
        if (counter := self._counters.get(outcome)) is None:
            counter = self._counters[outcome] = metrics.DELIVERIES.labels(self.partner.id, outcome)
        return counter

    def update(self, partner: Partner, transport: Transport) -> None:
        if partner.rate_limit != self.partner.rate_limit:
            self.rate = policy.RateLimit(partner.rate_limit)
        self.partner = partner
        self.transport = transport
        self.host = urlsplit(partner.url).netloc
        self.allow = partner.allowed(self.config.allow_cidrs)
        self.paused_until = max(self.paused_until, partner.paused_until or 0.0)
        transport.allow_host(partner.url, self.allow)

    def is_head(self, d: outbox.Pending) -> bool:
        versions = self.articles.get(d.article_id)
        return (bool(versions) and versions[0] is d and d.article_id not in self.inflight
                and (self.line is None or self.line.allows(d, bool(self.inflight))))

    def scheduled(self, d: outbox.Pending) -> bool:
        return any(v is d for v in self.articles.get(d.article_id, ()))

    def offer(self, d: outbox.Pending) -> None:
        """``d`` may go at its next attempt time if it is the head of its article (and, strict, of the line)."""
        if self.is_head(d):
            heapq.heappush(self.ready, (d.next_attempt_at, d.id, next(_entries), d))

    def reoffer(self, article_id: str | None = None) -> None:
        """After a change: the article's head may go, and a strict partner's first in line."""
        if article_id is not None and (versions := self.articles.get(article_id)):
            self.offer(versions[0])
        if self.line is not None and (first := self.line.first()) is not None:
            self.offer(first)


class Dispatcher:
    """Every partner's deliveries from one in-memory schedule, in one asyncio loop.

    The schedule is fed by the store in batches: what was queued since it last looked (the
    Kafka side says when), and every ``poll_s`` what other processes changed (a redrive, a
    resend) and the partners added or changed. What is due is found without asking the
    store: a partner is looked at when one of its deliveries falls due, when one of its
    requests ends or when its pause, circuit or rate limit lets it go again; so the work
    follows the deliveries, whatever the number of partners. A body is read once for all the
    deliveries of its event and format; each attempt only adds its partner's parts (sequence
    number, signature, headers). Attempts are written in group commits (:class:`Recorder`).

    ``only``: deliver one partner's deliveries (a replay's ``--send``), not every partner's;
    ``lease``: on a shared state, that partner's lease, taken by the caller.
    ``clock``: the time that decides which of a partner's secrets sign (a rotation's previous
    one until its time is up; tests move it on).

    On a shared (PostgreSQL) state, :attr:`leases` says which partners are this pusher's: the
    schedule holds only theirs, an attempt starts only while :meth:`may_send` says so, and a
    partner whose lease goes (a surplus, or lost) is handed over once its attempts in flight
    have ended and been recorded.
    """

    #: pending deliveries read from the store at a time
    BATCH = 5000
    #: bodies kept in memory (each shared by the deliveries of one event and format)
    BODIES = 256
    #: with the bodies a round needs, those of the deliveries queued right after its first are
    #: read too: a backlog to one partner starts a delivery or two a round, and a look-up each
    #: was a tenth of the sending (a replay's --send)
    BODIES_AHEAD = 64

    def __init__(self, settings: Settings, config: WebhookConfig, *, only: str | None = None,
                 lease: leases.PartnerLease | None = None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.config = config
        self.only = only
        self.clock = clock
        self.db = store.connect(settings, synchronous="NORMAL")
        self.dead_letters = DeadLetters(settings)
        self.recorder = Recorder(settings)
        self.transports = Transports(config)
        self.partners: dict[str, PartnerState] = {}
        #: every pending delivery in the schedule, by id; the highest id read
        self.known: dict[int, outbox.Pending] = {}
        self.last_id = 0
        self.bodies: dict[int, tuple[bytes, bytes | None]] = {}
        self.registry_at = 0.0
        #: partner id → the updated_at it was last read with (see :func:`.partners.changed_since`)
        self.registry_seen: dict[str, float] = {}
        self.outbox_at = time.time()  # what is pending at start is read whole
        self.timers: list[tuple[float, str]] = []
        #: partners to look at in the next round (a dict as an ordered set)
        self.runnable: dict[str, None] = {}
        #: partners with due deliveries held by the limit of requests in flight (all, or per host)
        self.held: dict[str, None] = {}
        self.held_by_host: dict[str, dict[str, None]] = defaultdict(dict)
        self.inflight = 0
        self.per_host: Counter[str] = Counter()
        self.tasks: set[asyncio.Task] = set()
        self.wake = asyncio.Event()
        self.queued = True  # read what is pending at start
        self.closing = False
        #: the partner leases of a pusher sharing a PostgreSQL state (None: it sends for every partner)
        self.leases: leases.Leases | leases.PartnerLease | None = lease
        #: the partners this pusher holds (with ``leases``); those it is handing over
        self.owned: set[str] = set()
        self.leaving: set[str] = set()
        #: the partners that pull their deliveries (:mod:`.pull`): none of theirs is in the schedule
        self.pulled: set[str] = set()
        #: the module's logger bound once, for the lines written per delivery and per partner (the
        #: lazy proxy binds anew at each call, even for a level that drops the line)
        self.log = log.bind()

    def may_send(self, partner_id: str) -> bool:
        """Whether this process may start an attempt for the partner (see :meth:`.leases.Leases.holds`)."""
        return self.leases is None or self.leases.holds(partner_id)

    def _mine(self, partner_id: str) -> bool:
        """Whether the partner's deliveries belong in this pusher's schedule."""
        if self.only is not None:
            return partner_id == self.only
        return self.leases is None or (partner_id in self.owned and partner_id not in self.leaving)

    def notify(self, partner_ids: set[str] | None = None) -> None:
        """New deliveries are in the outbox (called in the loop's thread)."""
        self.queued = True
        self.wake.set()

    # --- feeding the schedule from the store ---

    def refresh(self) -> None:
        """Take on the partners added or changed since the last look."""
        changed, self.registry_at = registry.changed_since(self.db, self.registry_at, seen=self.registry_seen)
        for partner in changed:
            (self.pulled.discard if partner.pushed else self.pulled.add)(partner.id)
            if self._mine(partner.id):
                self._take_on(partner)

    def _take_on(self, partner: Partner, *, resync: bool = True) -> PartnerState | None:
        """The partner in the schedule, as the registry has it now (None: it pulls). A partner
        new here, or pushed again after it pulled, has what it has pending read from the store
        (``resync=False``: the caller reads that for many partners at once)."""
        state = self.partners.get(partner.id)
        if state is not None and state.partner == partner:
            return state  # seen already
        if not partner.pushed:
            self.pulled.add(partner.id)
            if state is not None:
                self._stop_pushing(state, partner)
            return None
        was_pulled = state is None or not state.partner.pushed
        transport = self.transports.of(partner.url)
        if state is None:
            state = self.partners[partner.id] = PartnerState(partner, self.config, transport)
            transport.prepare(partner.id, partner.url)
            self.log.debug("partner_taken_on", partner=partner.id, url=partner.url, enabled=partner.enabled)
        else:
            state.update(partner, transport)
        if partner.strict != (state.line is not None):
            state.line = ordering.StrictLine(state.scheduled, None, (
                d for versions in state.articles.values() for d in versions)) if partner.strict else None
            self._held(state)
        if resync and was_pulled and self.last_id:  # what it has not acknowledged (queued while it pulled)
            self._resync([state])
        self.runnable[partner.id] = None
        return state

    def _stop_pushing(self, state: PartnerState, partner: Partner) -> None:
        """The partner pulls its deliveries from now on: they leave the schedule (those in flight
        once their attempt is recorded) and nothing more is sent to it."""
        state.partner = partner
        for article_id in [a for a in state.articles if a not in state.inflight]:
            for d in state.articles.pop(article_id):
                self.known.pop(d.id, None)
        state.ready.clear()
        log.info("partner_pulls", partner=partner.id, in_flight=len(state.inflight))

    def _held(self, state: PartnerState) -> None:
        """Read what holds a strict partner's line from the store (a dead delivery, until redriven or skipped)."""
        if state.line is None:
            return
        held = ordering.hold(self.db, state.partner.id)
        if held is not None and held.seq != state.line.held_at:
            log.warning("strict_line_held", partner=state.partner.id, seq=held.seq, reason=held.reason())
        state.line.held_at = held.seq if held else None
        state.reoffer()
        self.runnable[state.partner.id] = None

    def follow_leases(self) -> None:
        """Take on the partners whose lease this pusher got (with what they have pending), and
        hand over those it no longer holds once none of their attempts is in flight."""
        self.owned = self.leases.owned()
        self.leaving |= self.partners.keys() - self.owned
        for partner_id in list(self.leaving):
            state = self.partners.get(partner_id)
            if state is not None and state.inflight:
                continue  # its attempts end and are recorded first
            self.leaving.discard(partner_id)
            if state is not None:
                self._drop(state)
            self.leases.let_go(partner_id)
        # the partners of new leases (one removed meanwhile is not found), then what they have
        # pending, queued before this pusher held them: a query per 500 partners, not per partner
        new = registry.get_many(self.db, self.owned - self.partners.keys() - self.leaving - self.pulled)
        taken = [state for partner in new if (state := self._take_on(partner, resync=False)) is not None]
        if taken:
            self._resync(taken)

    def _drop(self, state: PartnerState) -> None:
        """Out of the schedule: a partner another pusher sends for now."""
        partner_id = state.partner.id
        for versions in state.articles.values():
            for d in versions:
                self.known.pop(d.id, None)
        del self.partners[partner_id]
        self.runnable.pop(partner_id, None)
        self.held.pop(partner_id, None)
        for waiting in self.held_by_host.values():
            waiting.pop(partner_id, None)
        log.info("partner_handed_over", partner=partner_id)

    def load_queued(self) -> None:
        """Read the deliveries queued since the last look, in batches."""
        self.queued = False
        while True:
            rows = outbox.pending_after(self.db, self.last_id, limit=self.BATCH, partner_id=self.only)
            for d in rows:
                self.add(d)
            if rows:
                self.last_id = rows[-1].id
            if len(rows) < self.BATCH:
                return

    def resync(self) -> None:
        """Follow what other processes changed in the outbox (deliveries made pending again by a
        redrive or a resend, or due at another time): only the partners they said they changed."""
        changed, self.outbox_at = registry.outbox_changes(self.db, self.outbox_at)
        if states := [self.partners[pid] for pid in changed if pid in self.partners]:
            self._resync(states)

    def _resync(self, states: list[PartnerState]) -> None:
        """Bring these partners' schedules in line with what the store has pending for them."""
        times = outbox.pending_times(self.db, self.last_id, [state.partner.id for state in states])
        missing, seen = [], set()
        for state in states:
            for delivery_id, at, attempts, revision in times.get(state.partner.id, ()):
                seen.add(delivery_id)
                d = self.known.get(delivery_id)
                if d is None:
                    missing.append(delivery_id)
                elif (d.next_attempt_at, d.attempts, d.revision) == (at, attempts, revision):
                    continue
                elif d.article_id not in state.inflight:
                    d.next_attempt_at, d.attempts, d.revision = at, attempts, revision
                    state.offer(d)
                    self.runnable[d.partner_id] = None
                elif d.revision != revision:  # resent while its attempt is out: it goes again after that
                    d.again = (at, attempts, revision)
        for d in outbox.pending_by_id(self.db, missing):
            self.add(d)
        for state in states:
            for d in [d for versions in state.articles.values() for d in versions if d.id not in seen]:
                if d.id <= self.last_id and d.article_id not in state.inflight:
                    self._settled(d)  # no longer pending in the store (another process finished it)
            self._held(state)

    def _state(self, d: outbox.Pending) -> PartnerState:
        return self.partners[d.partner_id]

    def add(self, d: outbox.Pending) -> None:
        if d.partner_id in self.pulled:
            return  # the partner fetches it (.pull)
        state = self.partners.get(d.partner_id)
        if state is None:
            if self.only is None and self.leases is None:  # a partner added since the last look
                self.refresh()
                state = self.partners.get(d.partner_id)
            if state is None:
                return  # (with leases: another pusher's, or taken on with its pending at the next look)
        self.known[d.id] = d
        versions = state.articles.setdefault(d.article_id, [])
        bisect.insort(versions, d, key=lambda v: (v.version, v.id))
        if state.line is not None:
            state.line.add(d)
        state.offer(d)
        self.runnable[d.partner_id] = None

    def _settled(self, d: outbox.Pending) -> None:
        """``d`` is delivered or dead: out of the schedule; the next version of its article is the head."""
        state = self._state(d)
        self.known.pop(d.id, None)
        versions = state.articles.get(d.article_id, [])
        if d in versions:
            versions.remove(d)
        if not versions:
            state.articles.pop(d.article_id, None)
        state.reoffer(d.article_id)

    # --- sending ---

    def _timer(self, state: PartnerState, at: float) -> None:
        if state.check_at is None or at < state.check_at:
            state.check_at = at
            heapq.heappush(self.timers, (at, state.partner.id))

    def dispatch(self, now: float) -> None:
        """One round: look at the partners whose time came or that something changed for, and
        start what may go."""
        while self.timers and self.timers[0][0] <= now:
            at, partner_id = heapq.heappop(self.timers)
            state = self.partners.get(partner_id)
            if state is not None and state.check_at == at:
                state.check_at = None
                self.runnable[partner_id] = None
        starting: list[tuple[PartnerState, outbox.Pending]] = []
        # the slots free go first to the partners held longest, in order, then to the others
        # (held at the back when the slots are full): one that just had a story does not take its
        # next one ahead of those still waiting for their first, so a flash reaches everyone
        # before the story after it does. Each examined leaves the queue or, the slots full again,
        # goes back to its end, which ends this loop.
        while self.held and self.inflight < self.config.max_inflight:
            partner_id = next(iter(self.held))
            del self.held[partner_id]
            if (state := self.partners.get(partner_id)) is not None:
                self._examine(state, now, starting)
        while self.runnable:
            runnable, self.runnable = self.runnable, {}
            for partner_id in runnable:
                if (state := self.partners.get(partner_id)) is not None:
                    self._examine(state, now, starting)
        if starting:
            if wanted := {d.body_id for _, d in starting} - self.bodies.keys():
                first = min(d.id for _, d in starting)
                ahead = {d.body_id for i in range(first, first + self.BODIES_AHEAD) if (d := self.known.get(i))}
                self.bodies.update(outbox.bodies(self.db, wanted | (ahead - self.bodies.keys())))
            for state, d in starting:
                pieces = payloads.pieces(*self.bodies[d.body_id], d.seq)
                task = asyncio.create_task(self._send(state, d, pieces, state.host))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            for body_id in list(self.bodies)[:max(0, len(self.bodies) - self.BODIES)]:
                del self.bodies[body_id]  # the oldest first

    def _examine(self, state: PartnerState, now: float, starting: list) -> None:
        partner = state.partner
        if not partner.enabled or not partner.pushed or self.closing:
            return
        if now < state.paused_until:  # it asked (Retry-After) not to be called yet
            self._timer(state, state.paused_until)
            return
        #: its kept-alive connections not taken by what this round starts (the tasks started
        #: take theirs before the next round)
        spare: float | None = None
        while state.ready:
            at, _, _, d = state.ready[0]
            if not state.is_head(d) or at != d.next_attempt_at or d.id not in self.known:
                heapq.heappop(state.ready)  # superseded by a later entry
                continue
            if at > now:
                self._timer(state, at)
                return
            if not self.may_send(partner.id):  # its lease is not certain (yet, or any more)
                self._timer(state, now + self.leases.starts_in(partner.id))
                return
            if state.sending >= min(partner.concurrency, state.breaker.capacity(partner.concurrency)):
                if not state.sending:  # an open circuit: look again when it lets a probe go
                    self._timer(state, now + max(0.005, state.breaker.wait_s()))
                return  # else: the end of a request looks again
            if self.inflight >= self.config.max_inflight:
                self.held[partner.id] = None
                return
            if self.per_host[state.host] >= self.config.host_connections:
                self.held_by_host[state.host][partner.id] = None
                return
            if (wait := state.rate.wait_s()) > 0:
                self._timer(state, now + wait)
                return
            if spare is None:
                spare = state.transport.idle(partner.url)
            if spare <= 0 and state.sending and self.inflight >= self.config.spread_below:
                return  # busy: no second connection to it; the end of its request looks again
            spare -= 1
            heapq.heappop(state.ready)
            state.breaker.sending()
            state.inflight.add(d.article_id)
            state.sending += 1
            self.inflight += 1
            self.per_host[state.host] += 1
            starting.append((state, d))

    def _answered(self, state: PartnerState, host: str) -> None:
        """An attempt's request ended (answered, failed or cancelled): its slots are free."""
        state.sending -= 1
        self.inflight -= 1
        self.per_host[host] -= 1
        if self.held:  # its turn comes after the partners already waiting for a slot (dispatch)
            self.held[state.partner.id] = None
        else:
            self.runnable[state.partner.id] = None
        if waiting := self.held_by_host.get(host):
            partner_id = next(iter(waiting))
            del waiting[partner_id]
            self.runnable[partner_id] = None
        self.wake.set()

    def _release(self, state: PartnerState, d: outbox.Pending) -> None:
        """An attempt is recorded (or crashed): its article may send again."""
        state.inflight.discard(d.article_id)
        self.runnable[state.partner.id] = None
        self.wake.set()

    async def _send(self, state: PartnerState, d: outbox.Pending, pieces: tuple[bytes, ...], host: str) -> None:
        partner = state.partner
        try:
            try:
                response = await state.transport.send(Outgoing(
                    partner.id, partner.url, d.content_type, d.event_id, d.article_id, d.version,
                    d.seq, pieces, partner.signing_secrets(self.clock()), state.allow))
            finally:
                self._answered(state, host)
            attempt = await self._judge(state, d, response)
            await self.recorder.record(d, attempt)
            d.tries += 1
            d.attempts += int(attempt.spent)
            d.last_status = attempt.status_code
            if d.again is not None:  # the store kept it pending, as the resend or redrive left it
                (d.next_attempt_at, d.attempts, d.revision), d.again = d.again, None
            elif attempt.outcome in ("delivered", "dead"):
                if attempt.outcome == "dead" and state.line is not None:
                    state.line.died(d)
                    log.warning("strict_line_held", partner=partner.id, seq=d.seq,
                                reason=ordering.Hold(partner.id, d.seq, attempt.error).reason())
                self._settled(d)
            elif attempt.next_attempt_at is not None:
                d.next_attempt_at = attempt.next_attempt_at
            state.counted(attempt.outcome).inc()
            if attempt.outcome == "delivered":
                metrics.QUEUED_TO_PARTNER.observe(max(0.0, time.time() - d.created_at))
            log_at = self.log.info if attempt.outcome == "delivered" else self.log.warning
            log_at("delivery_" + attempt.outcome, partner=partner.id, article_id=d.article_id,
                   version=d.version, event_id=d.event_id, seq=d.seq, attempt=d.tries,
                   status=response.status, error=response.error, duration_ms=round(response.duration_ms, 1),
                   next_attempt_at=attempt.next_attempt_at)
        except Exception:  # a bug here must not stop the pusher; the delivery stays pending
            state.breaker.inconclusive()
            log.exception("delivery_crashed", partner=partner.id, article_id=d.article_id, event_id=d.event_id)
        finally:
            self._release(state, d)
            state.reoffer(d.article_id)  # this delivery again, or the next version (strict: the next number)

    async def _judge(self, state: PartnerState, d: outbox.Pending, response: delivery.Response) -> Attempt:
        now = time.time()
        common = dict(status_code=response.status, duration_ms=response.duration_ms, error=response.error)
        if response.ok:
            state.breaker.success()
            return Attempt(outcome="delivered", next_attempt_at=None, **common)
        if response.gone:
            state.breaker.success()  # the endpoint answered; it asked us to stop
            reason = f"410 Gone from {state.partner.url} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}"
            state.partner = replace(state.partner, enabled=False, disabled_reason=reason)
            registry.disable(self.db, state.partner.id, reason)
            return Attempt(outcome="gone", next_attempt_at=now, spent=False, **common)
        if response.retry_after is not None:
            state.breaker.inconclusive()
            until = now + min(response.retry_after, self.config.max_retry_after_s)
            state.paused_until = max(state.paused_until, until)
            return Attempt(outcome="throttled", next_attempt_at=until, spent=False, pause_until=until, **common)
        if state.breaker.failure():
            log.warning("circuit_opened", partner=state.partner.id, failures=state.breaker.consecutive,
                        cooldown_s=self.config.breaker_cooldown_s)
        delay = policy.backoff(self.config.schedule, d.attempts + 1, self.config.jitter)
        if delay is not None:
            return Attempt(outcome="retry", next_attempt_at=now + delay, **common)
        reason = f"gave up after {d.attempts + 1} attempts: {response.error}"
        try:
            avro = outbox.event_avro(self.db, d.event_id)
            await asyncio.get_running_loop().run_in_executor(None, self.dead_letters.send, d, avro, reason)
        except (KafkaError, OSError) as exc:  # the state file still says dead: `deliveries redrive` works
            log.error("dead_letter_failed", partner=state.partner.id, event_id=d.event_id, error=str(exc))
        return Attempt(outcome="dead", next_attempt_at=None, **common)

    # --- the loop ---

    async def run(self, stop: asyncio.Event, kafka_alive: Callable[[], bool] = lambda: True) -> None:
        if self.only is None and store.shared(self.settings):  # on SQLite, the file's lock makes this pusher the only one
            self.leases = leases.Leases(self.settings, lease_s=self.config.lease_s,
                                        quiet_s=leases.quiet_s(self.config))
        stopper = asyncio.create_task(self._wake_on(stop))
        next_look = 0.0
        try:
            while not stop.is_set():
                self.wake.clear()
                now = time.time()
                try:
                    if self.leases and (self.leaving or self.leases.beat_in() == 0):
                        self.follow_leases()
                    if now >= next_look:
                        self.refresh()
                        self.resync()
                        self.queued = True  # and what other processes queued (a replay)
                        if not kafka_alive():
                            raise PusherFailed("the Kafka consume loop stopped")
                        next_look = now + self.config.poll_s
                    if self.queued:
                        self.load_queued()
                except dialect.StateAway as exc:  # its supervisor starts it again, connected anew
                    raise PusherFailed(str(exc)) from exc
                self.dispatch(time.time())
                until = min(next_look, self.timers[0][0]) if self.timers else next_look
                if self.leases:
                    until = min(until, time.time() + self.leases.beat_in())
                if not self.wake.is_set():  # woken, or the time comes (a timer, not wait_for's task: 9 µs a round)
                    timer = asyncio.get_running_loop().call_later(max(0.0, until - time.time()), self.wake.set)
                    try:
                        await self.wake.wait()
                    finally:
                        timer.cancel()
        finally:
            stopper.cancel()
            await self.close()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.wake.set()

    async def close(self) -> None:
        """Send nothing new; let what is in flight finish and be recorded (within a timeout),
        so that a clean stop leaves nothing to send twice."""
        self.closing = True
        if self.tasks:
            _, late = await asyncio.wait(list(self.tasks), timeout=2 * self.config.timeout_s + 1)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.leases:
            self.leases.close()
        await self.transports.close()
        await asyncio.get_running_loop().run_in_executor(None, self.dead_letters.close)
        self.recorder.close()
        self.db.close()


async def serve(settings: Settings, config: WebhookConfig, stop: asyncio.Event | None = None, *,
                clock: Callable[[], float] = time.time) -> None:
    """Run the pusher until ``stop`` is set (or SIGTERM/SIGINT in the main thread).

    Raises :class:`PusherBusy` at once when another pusher holds the state file's lock (SQLite:
    one pusher per file; a PostgreSQL state takes any number, see :mod:`.leases`).
    """
    if store.shared(settings):
        await _serve(settings, config, stop, clock)
        return
    try:
        lock = locks.hold_lock(store.lock_path(settings))
    except locks.LockHeld as exc:
        holder = (f"a replay sending for partner {exc.holder['sending_for']}" if "sending_for" in exc.holder
                  else "a pusher")
        raise PusherBusy(f"{holder} (pid {exc.pid}) already runs on {store.path_of(settings)} (one per SQLite "
                         f"file; several pushers share a PostgreSQL state: NEWSWIRE_STATE_URL)") from None
    try:
        await _serve(settings, config, stop, clock)
    finally:
        lock.close()


async def _serve(settings: Settings, config: WebhookConfig, stop: asyncio.Event | None,
                 clock: Callable[[], float]) -> None:
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    pusher = Dispatcher(settings, config, clock=clock)
    kafka_side = QueueingProcess(settings, config, pusher.notify)
    try:
        await loop.run_in_executor(None, kafka_side.wait_ready)
    except QueueingFailed as exc:
        await pusher.close()
        raise PusherFailed(f"the Kafka consume loop failed: {exc}") from None
    kafka_side.watch(loop)
    heap.started()
    kept = None if config.keep_s is None else retention.Retention(
        settings, config.keep_s, every_s=config.prune_every_s, clock=clock).start()
    log.info("pusher_started", group=config.group_id, attempts=config.max_attempts, timeout_s=config.timeout_s,
             keep_days=None if config.keep_s is None else round(config.keep_s / 86400, 2), kafka_pid=kafka_side.pid)
    try:
        await pusher.run(stop, kafka_alive=kafka_side.alive)
    except PusherFailed:
        if kafka_side.error is None:
            raise
    finally:
        if kept:
            await loop.run_in_executor(None, kept.stop)
        # Joining a consumer group can take a session timeout (a member killed with -9 is still in
        # it); the outbox is durable and a re-read event is not queued twice, so do not wait long.
        closed = await loop.run_in_executor(None, kafka_side.stop, KAFKA_CLOSE_WAIT_S)
        log.info("pusher_stopped", kafka_loop_closed=closed)
    if kafka_side.error is not None:
        raise PusherFailed(f"the Kafka consume loop failed: {kafka_side.error}")


class Running(LoopThread):
    """The pusher run in a background thread with its own event loop (tests, benchmarks, demo)."""

    def __init__(self, settings: Settings, config: WebhookConfig, *, clock: Callable[[], float] = time.time):
        super().__init__(lambda stop: serve(settings, config, stop, clock=clock), name="pusher", fast=True)


class PartnerSending(LoopThread):
    """One partner's pending deliveries sent from this process, without Kafka, through the
    same dispatcher (a replay's ``--send``). :meth:`wake` after queueing. It sends only as
    the partner's one sender: on PostgreSQL it holds the partner's lease
    (:class:`.leases.PartnerLease`; :class:`.leases.LeaseHeld` at once when a live pusher holds
    it), on SQLite the state file's pusher lock (:class:`PusherBusy` while a pusher runs).
    Raises :class:`~.partners.UnknownPartner` at once."""

    def __init__(self, settings: Settings, config: WebhookConfig, partner_id: str):
        db = store.connect(settings)
        try:
            registry.get(db, partner_id)
        finally:
            db.close()
        self._dispatcher: Dispatcher | None = None
        self._lock: locks.Lock | None = None
        lease = None
        if store.shared(settings):
            lease = leases.PartnerLease(settings, partner_id, lease_s=config.lease_s, quiet_s=leases.quiet_s(config))
        else:
            try:
                self._lock = locks.hold_lock(store.lock_path(settings), sending_for=partner_id)
            except locks.LockHeld as exc:
                raise PusherBusy(f"partner {partner_id} is sent for by the pusher (pid {exc.pid}) running on "
                                 f"{store.path_of(settings)}") from None
        super().__init__(lambda stop: self._serve(settings, config, partner_id, lease, stop),
                         name=f"send-{partner_id}", fast=True)

    async def _serve(self, settings: Settings, config: WebhookConfig, partner_id: str,
                     lease: leases.PartnerLease | None, stop: asyncio.Event) -> None:
        try:
            self._dispatcher = Dispatcher(settings, config, only=partner_id, lease=lease)
        except BaseException:
            if lease is not None:
                lease.close()
            raise
        await self._dispatcher.run(stop)

    def stop(self, timeout: float = 60) -> None:
        """Stop sending (what is in flight ends and is recorded), then release the lease or lock."""
        super().stop(timeout)
        if self._lock is not None:
            self._lock.close()

    def wake(self) -> None:
        self.call_soon(lambda: self._dispatcher and self._dispatcher.notify())
