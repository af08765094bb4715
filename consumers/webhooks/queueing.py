"""The pusher's Kafka side in a process of its own.

The Kafka consume loop (:class:`newswire.bus.EventLoop` with :class:`.outbox.Enqueuer`:
deciding, rendering and queueing each event for every partner) and the sending loop
(:class:`.pusher.Dispatcher`: signing, HTTP, receipts) are both Python that runs for every
delivery. In one process they take turns on one interpreter lock, and a thread that waits for
the lock waits up to a switch interval (5 ms) after each of its socket reads: at 100
articles/s to 20 partners a delivery waited 60-80 ms at the median and 250-500 ms at p99 for
what takes under 1 ms of work. In two processes each has its own lock, and on a machine with
two cores they run at once.

:class:`QueueingProcess` starts the Kafka side in a child process and tells the dispatcher, in
its event loop, each time a batch of deliveries is committed (a byte on a pipe read by
``loop.add_reader``). Nothing of the guarantees moves: the child commits the deliveries
(``synchronous=FULL``) before the Kafka offsets, the dispatcher reads them from the store as
before, and the store's lock rules are the same with the writer in another process (SQLite's
one writer at a time; PostgreSQL's row locks). The child ends when told (what it consumed is
queued and committed first), and at once when the pusher dies (kill -9 included:
:mod:`newswire.child_process`); when it fails, the pusher is told why and stops,
as when its Kafka thread failed. Its metrics (events consumed, publish → queued, lag) are
reported every :data:`REPORT_S` and served by the pusher's ``/metrics``
(:func:`newswire.metrics.relay`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Callable

from newswire import bus, heap, logs, metrics
from newswire.child_process import Child
from newswire.config import Settings
from newswire.consumers.webhooks import outbox, store
from newswire.consumers.webhooks.config import WebhookConfig

log = logs.get(__name__)

#: what the two processes say on the pipe
_READY, _QUEUED, _METRICS, _FAILED, _STOP = "ready", "queued", "metrics", "failed", "stop"
#: how often the Kafka side reports its metrics (seconds)
REPORT_S = 1.0
#: how long the pusher waits for its Kafka side to start (imports, the state, the consumer)
START_TIMEOUT_S = 120.0


class QueueingFailed(RuntimeError):
    """The Kafka side could not start or stopped on an error (the message says why)."""


def membership(settings: Settings, config: WebhookConfig) -> dict:
    """How the pusher's Kafka side is a member of its group.

    One pusher per SQLite file: a static member, which a restart after a crash puts back at
    once. Pushers sharing a PostgreSQL state: ordinary members, with a short session, so that
    a killed one's partitions go to the others within seconds (they queue for every partner).
    """
    if store.shared(settings):
        return {"consumer_overrides": {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 2_000}}
    return {"instance_id": bus.instance_id(config.group_id, store.path_of(settings))}


class QueueingProcess:
    """The Kafka side of a pusher in a child process (module doc). ``on_queued`` is called in
    the event loop's thread after each commit of new deliveries (:meth:`watch`)."""

    def __init__(self, settings: Settings, config: WebhookConfig, on_queued: Callable[[], None]):
        self.on_queued = on_queued
        self._process = Child(_queue, settings, config, name="webhooks-kafka")
        self._pipe = self._process.pipe
        #: why the Kafka side stopped (None while it runs, or after a clean stop)
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self) -> None:
        """Block until the Kafka side runs; raise :class:`QueueingFailed` when it cannot start."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._pipe.poll(0.5):
            if not self._process.alive():
                self._not_started(f"{self._process.ended()} before it started")
            if time.monotonic() > deadline:
                self._process.kill()
                self._not_started(f"it did not start within {START_TIMEOUT_S:.0f} s")
        try:
            kind, detail = self._pipe.recv()
        except EOFError:
            self._process.join(10)
            kind, detail = _FAILED, f"{self._process.ended()} before it started"
        if kind != _READY:
            self._not_started(detail)

    def _not_started(self, why: str):
        self._process.join(10)
        self._stopped = True
        raise QueueingFailed(why)

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hear the child in ``loop`` from now on."""
        self._loop = loop
        loop.add_reader(self._pipe.fileno(), self._readable)

    def _readable(self) -> None:
        queued = False
        try:
            while self._pipe.poll():
                kind, detail = self._pipe.recv()
                if kind == _QUEUED:
                    queued = True
                elif kind == _METRICS:
                    metrics.relay(self, detail)
                elif kind == _FAILED:
                    self.error = detail
        except (EOFError, OSError):  # it ended (its end of the pipe closed as it exited)
            self._unwatch()
            if self.error is None and not self._stopped:
                self._process.join(5)
                self.error = self._process.ended()
        if queued:
            self.on_queued()

    def _unwatch(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._pipe.fileno())
        self._loop = None

    def alive(self) -> bool:
        """Whether the Kafka side still consumes."""
        return self.error is None and self._process.alive()

    def stop(self, timeout: float) -> bool:
        """Let the child finish its batch (queued and committed), leave its group and end;
        kill it after ``timeout`` s. Whether it ended by itself."""
        self._unwatch()
        metrics.relay(self, None)
        if not self._stopped:
            self._stopped = True
            try:
                self._pipe.send((_STOP, None))
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
        ended = self._process.join(timeout)
        if not ended:
            log.warning("kafka_side_kill", pid=self._process.pid, waited_s=timeout)
            self._process.kill()
        self._pipe.close()
        return ended


def _queue(pipe: Connection, settings: Settings, config: WebhookConfig) -> None:
    """The child: the Kafka consume loop queueing into the outbox until told to stop."""
    sending = threading.Lock()  # the consume loop and the reporter both write to the pipe

    def tell(kind: str, detail: object) -> None:
        with sending:
            pipe.send((kind, detail))

    try:
        enqueuer = outbox.Enqueuer(settings, on_committed=lambda _partners: tell(_QUEUED, None))
        consume = bus.EventLoop(settings, config.group_id, enqueuer.handle, before_commit=enqueuer.commit,
                                name="webhooks", state=store.path_of(settings), **membership(settings, config))
    except Exception as exc:
        tell(_FAILED, f"{type(exc).__name__}: {exc}")
        return
    tell(_READY, os.getpid())
    heap.started()

    def hear() -> None:  # a stop, or the pusher's end of the pipe closed: finish the batch and stop
        try:
            pipe.recv()
        except (EOFError, OSError):
            pass
        consume.stop()

    def report() -> None:
        while not consume.stopping.wait(REPORT_S):
            tell(_METRICS, metrics.own())

    threading.Thread(target=hear, name="webhooks-kafka-pipe", daemon=True).start()
    threading.Thread(target=report, name="webhooks-kafka-metrics", daemon=True).start()
    try:
        consume.run()
    except BaseException as exc:  # said to the pusher, which stops with it
        log.exception("kafka_loop_failed", consumer="webhooks")
        tell(_FAILED, f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from exc
    finally:
        enqueuer.close()
