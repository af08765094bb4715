"""The feeds consumer: its own group, an :class:`~newswire.bus.EventLoop` in its own thread.

It starts each partition where its stored view ends, whatever the group's offsets say, except
where the group's committed offset is *behind* the view: someone reset the group
(``newswire replay --group newswire-feeds``, or ``kafka-consumer-groups --reset-offsets``) to
have it re-read, so it re-reads from there, and applies each version it already has again
(a new cursor value: change pollers get it again). A committed offset that is where the view
stood before its last save is no reset: a crash came between that save and its commit, and
the view goes on from its own position. Only this consumer writes the view's
positions; a reset only moves the group's offsets, which Kafka keeps.

Each event is applied to the :class:`FeedView`; before offsets are committed the view's
journal and the consumer's positions are written to the :class:`ViewStore` in one SQLite
transaction, and only then may the change cursor hand the new changes out. Between polls
the consumer lifts the embargoes that have ended (each lifting is persisted at once).

An event the view cannot use, or the renderers could not render (it is rendered as a
NewsML-G2 item, the strictest format, on the way in), raises ``ValueError`` in the handler,
so the loop sends it to the dead-letter topic and goes on: it never reaches a feed. That
render is not a check thrown away: its bytes are kept (:mod:`newswire.formats.kept`, shared
with the feed server), and NewsML-G2 feeds and change lists are assembled from them.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Callable

from kafka import ConsumerRebalanceListener
from kafka.errors import KafkaError

from newswire import logs, metrics, topics
from newswire.bus import Delivery, EventLoop, instance_id
from newswire.codec import ArticleEvent
from newswire.config import Settings, consumer_group
from newswire.formats import registry as formats
from newswire.formats.kept import Renders

from .store import ViewStore
from .view import Change, FeedView

log = logs.get(__name__)

#: the feeds consumer's Kafka consumer group, unless ``NEWSWIRE_FEEDS_GROUP`` names another
GROUP = "newswire-feeds"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def check_renders(event: ArticleEvent, renders: Renders | None = None) -> None:
    """Raise ``ValueError`` naming the problem (so the event goes to the dead letters) when the
    renderers could not render ``event``: it is rendered as a NewsML-G2 item (with picture
    items), and the bytes are kept in ``renders`` for the feeds."""
    (renders or Renders()).fragment(event, formats.FORMATS["newsml"])


class _SeekToStored(ConsumerRebalanceListener):
    """On assignment, start each partition where the stored view ends (or at the beginning);
    where the group's committed offset is behind that, from the committed offset (see
    :class:`FeedsConsumer`)."""

    def __init__(self, feeds: "FeedsConsumer"):
        self.feeds = feeds

    def on_partitions_revoked(self, revoked) -> None:
        pass

    def on_partitions_assigned(self, assigned) -> None:
        feeds = self.feeds
        kafka = feeds.loop.consumer
        stored, previous = feeds.store.positions(feeds.topic), feeds.store.previous_positions(feeds.topic)
        starts = {}
        for tp in assigned:
            committed = (feeds.committed or {}).pop(tp.partition, None) if tp.partition in stored else None
            behind = committed is not None and committed < stored[tp.partition]
            if behind and committed == previous.get(tp.partition):
                # where the view was before its last save: a crash cut that batch's commit off,
                # and the view has it (nothing to re-read)
                log.info("feeds_commit_lost_in_crash", topic=feeds.topic, partition=tp.partition,
                         committed=committed, view_offset=stored[tp.partition])
                behind = False
            if behind:
                feeds.rereading[tp.partition] = stored[tp.partition]
                log.warning("feeds_rereading", topic=feeds.topic, partition=tp.partition, offset=committed,
                            view_offset=stored[tp.partition], events=stored[tp.partition] - committed,
                            why="the group's committed offset is behind the view (a group reset)")
                starts[tp.partition] = committed
                kafka.seek(tp, committed)
            elif tp.partition in stored:
                starts[tp.partition] = stored[tp.partition]
                kafka.seek(tp, stored[tp.partition])
            else:
                starts[tp.partition] = 0
                kafka.seek_to_beginning(tp)
        log.info("feeds_partitions_assigned", topic=feeds.topic, positions=starts)


class FeedsConsumer:
    """Keeps ``view`` up to date from the articles topic and persists it in ``store``."""

    def __init__(self, settings: Settings, view: FeedView, store: ViewStore, *,
                 clock: Clock = utc_now, group_id: str | None = None, renders: Renders | None = None):
        """``group_id``: its consumer group (by default ``NEWSWIRE_FEEDS_GROUP``, or :data:`GROUP`);
        ``renders``: where the intake's NewsML-G2 renders are kept (the feed server's, so it
        serves them; by default the check's own, with the example authority)."""
        self.settings = settings
        self.renders = renders or Renders()
        self.group_id = group_id or consumer_group("FEEDS", GROUP)
        self.view = view
        self.store = store
        self.clock = clock
        self.topic = settings.topics.articles
        #: partition → the group's committed offset, read before the consumer joins the group
        #: (None until then); taken by the first assignment of each partition
        self.committed: dict[int, int] | None = None
        # one consumer per view file: a static member, which a restart after a crash puts back at once
        self.loop = EventLoop(settings, self.group_id, self._handle, before_commit=self._persist, name="feeds",
                              instance_id=instance_id(self.group_id, store.path), state=store.path,
                              listener=_SeekToStored(self))
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        #: partition → the view's position when a re-read (a group reset) began there
        self.rereading: dict[int, int] = {}
        #: events re-read because the group's offsets were behind the view
        self.reread = 0
        #: changes taken from the view's journal that a save that failed (a full disk) did not write
        self._unsaved: list[Change] = []

    def _again(self, partition: int, offset: int) -> bool:
        """Whether this record is re-read because of a group reset (and count it)."""
        end = self.rereading.get(partition)
        if end is None or offset >= end:
            return False
        self.reread += 1
        if offset + 1 >= end:
            del self.rereading[partition]
            log.info("feeds_reread", topic=self.topic, partition=partition, up_to=end, reread_total=self.reread)
        return True

    def _handle(self, delivery: Delivery) -> None:
        event = delivery.event
        topic, partition, offset = delivery.position
        again = self._again(partition, offset)
        check_renders(event, self.renders)
        entry = self.view.apply(event, self.clock(), payload=delivery.record.value, again=again)
        if entry is not None:
            metrics.OUTPUTS_PRODUCED.labels("feeds", "feed_item").inc()
            log.info("feed_view_applied", article_id=event["article_id"], version=event["version"],
                     event_type=event["event_type"], event_id=event["event_id"], seq=entry.seq,
                     held=entry.held, topic=topic, partition=partition, offset=offset)

    def _persist(self) -> None:
        """Save the view's new changes with the positions; what a failed save did not write is
        kept, and saved by the next call."""
        changes = self._unsaved = self._unsaved + self.view.take_journal()
        kafka = self.loop.consumer
        positions = {(tp.topic, tp.partition): kafka.position(tp) for tp in kafka.assignment()}
        self.store.save(changes, self.view, positions)
        self._unsaved = []
        if changes:
            self.view.mark_durable(changes[-1].entry.seq)

    def _read_committed(self) -> bool:
        """Read the group's committed offsets (before joining: they cannot change while the group
        has a member, since Kafka refuses a reset then); False while Kafka does not answer."""
        try:
            admin = topics.admin(self.settings)
            try:
                found = admin.list_group_offsets({self.group_id: None}).get(self.group_id, {})
            finally:
                admin.close()
        except KafkaError as exc:
            log.warning("feeds_group_offsets_unavailable", group=self.group_id, error=str(exc))
            return False
        self.committed = {tp.partition: om.offset for tp, om in found.items()
                          if tp.topic == self.topic and om is not None and om.offset is not None and om.offset >= 0}
        return True

    def poll(self, timeout_ms: int = 200) -> int:
        """One batch (applied, persisted, committed), then lift ended embargoes; return the batch size."""
        if self.committed is None and not self._read_committed():
            self.loop.stopping.wait(timeout_ms / 1000)
            return 0
        count = self.loop.poll_once(timeout_ms)
        if self.view.release(self.clock()):
            self.loop.wait_out_full_disk(self._persist)
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

    def start(self, on_failure: Callable[[], None] | None = None) -> None:
        """Consume in a thread; ``on_failure`` is called (in it) if it stops on an error,
        so that the process can exit and be restarted by its supervisor."""
        self._thread = threading.Thread(target=self._run, args=(on_failure,), name="feeds-consumer", daemon=True)
        self._thread.start()

    def _run(self, on_failure: Callable[[], None] | None) -> None:
        log.info("consumer_started", consumer="feeds", topic=self.topic)
        try:
            while not self.loop.stopping.is_set():
                self.poll()
        except BaseException as exc:  # reported on /health; the offsets stay uncommitted
            self.failure = exc
            log.exception("feeds_consumer_failed")
        finally:
            self.loop.close()
        if self.failure is not None and on_failure is not None:
            on_failure()

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
    log.info("feed_view_loaded", articles=count, in_memory=view.in_memory(), cursor=view.head, path=str(store.path))
    return view, store


def open_renders(settings: Settings, authority: str) -> Renders:
    """The kept renders of this installation's feeds (``<home>/feeds/renders.sqlite3``)."""
    return Renders(authority, path=settings.home / "feeds" / "renders.sqlite3")
