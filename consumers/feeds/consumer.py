"""The feeds consumer: its own group, an :class:`~newswire.bus.EventLoop` in its own thread.

Each event is applied to the :class:`FeedView`; before offsets are committed the view's
journal and the consumer's positions are written to the :class:`ViewStore` in one SQLite
transaction, and only then may the change cursor hand the new changes out. Between polls
the consumer lifts the embargoes that have ended (each lifting is persisted at once).

An event the view cannot use, or the renderers could not render, raises ``ValueError`` in
the handler, so the loop sends it to the dead-letter topic and goes on.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable

from kafka import ConsumerRebalanceListener

from newswire import formats, logs, metrics
from newswire.bus import Delivery, EventLoop, instance_id
from newswire.config import Settings

from .store import ViewStore
from .view import FeedView

log = logs.get(__name__)

GROUP = "newswire-feeds"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _SeekToStored(ConsumerRebalanceListener):
    """On assignment, start each partition where the stored view ends (or at the beginning)."""

    def __init__(self, feeds: "FeedsConsumer"):
        self.feeds = feeds

    def on_partitions_revoked(self, revoked) -> None:
        pass

    def on_partitions_assigned(self, assigned) -> None:
        kafka = self.feeds.loop.consumer
        stored = self.feeds.store.positions(self.feeds.topic)
        for tp in assigned:
            if tp.partition in stored:
                kafka.seek(tp, stored[tp.partition])
            else:
                kafka.seek_to_beginning(tp)
        log.info("feeds_partitions_assigned", topic=self.feeds.topic,
                 positions={tp.partition: stored.get(tp.partition, 0) for tp in assigned})


class FeedsConsumer:
    """Keeps ``view`` up to date from the articles topic and persists it in ``store``."""

    def __init__(self, settings: Settings, view: FeedView, store: ViewStore, *,
                 clock: Clock = utc_now, group_id: str = GROUP):
        self.view = view
        self.store = store
        self.clock = clock
        self.topic = settings.topics.articles
        # one consumer per view file: a static member, which a restart after a crash puts back at once
        self.loop = EventLoop(settings, group_id, self._handle, before_commit=self._persist, name="feeds",
                              instance_id=instance_id(group_id, store.path), listener=_SeekToStored(self))
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    def _handle(self, delivery: Delivery) -> None:
        event = delivery.event
        formats.prepare(event)  # ValueError (to the dead letters) if a renderer could not render it
        entry = self.view.apply(event, self.clock(), payload=delivery.record.value)
        if entry is not None:
            metrics.OUTPUTS_PRODUCED.labels("feeds", "feed_item").inc()
            topic, partition, offset = delivery.position
            log.info("feed_view_applied", article_id=event["article_id"], version=event["version"],
                     event_type=event["event_type"], event_id=event["event_id"], seq=entry.seq,
                     held=entry.held, topic=topic, partition=partition, offset=offset)

    def _persist(self) -> None:
        changes = self.view.take_journal()
        kafka = self.loop.consumer
        positions = {(tp.topic, tp.partition): kafka.position(tp) for tp in kafka.assignment()}
        self.store.save(changes, self.view, positions)
        if changes:
            self.view.mark_durable(changes[-1].entry.seq)

    def poll(self, timeout_ms: int = 200) -> int:
        """One batch (applied, persisted, committed), then lift ended embargoes; return the batch size."""
        count = self.loop.poll_once(timeout_ms)
        if self.view.release(self.clock()):
            self._persist()
        return count

    def caught_up(self) -> bool:
        """Whether the view has taken in every message on the topic (for tests and readiness)."""
        kafka = self.loop.consumer
        assigned = kafka.assignment()
        if not assigned:
            return False
        ends = kafka.end_offsets(list(assigned))
        return all(kafka.position(tp) >= ends[tp] for tp in assigned) and self.view.durable == self.view.head

    # --- in its own thread ----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feeds-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        log.info("consumer_started", consumer="feeds", topic=self.topic)
        try:
            while not self.loop.stopping.is_set():
                self.poll()
        except BaseException as exc:  # the server reports it on /health; the offsets stay uncommitted
            self.failure = exc
            log.exception("feeds_consumer_failed")
        finally:
            self.loop.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the thread (or, when it never started, close the loop)."""
        self.loop.stop()
        if self._thread is not None:
            self._thread.join()
        else:
            self.loop.close()


def open_view(settings: Settings) -> tuple[FeedView, ViewStore]:
    """The persisted view of this installation (``<home>/feeds/view.sqlite3``), loaded."""
    store = ViewStore(settings.home / "feeds" / "view.sqlite3")
    view = FeedView()
    count = store.load(view)
    log.info("feed_view_loaded", articles=count, cursor=view.head, path=str(store.path))
    return view, store

