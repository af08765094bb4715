"""Kafka clients as newswire uses them: durable producers, manual-commit consumers,
the dead-letter topic, and the consume loop every consumer runs.

Producers write with ``acks=all`` and idempotence, so a confirmed write is on every
in-sync replica and a retried send is never duplicated. Consumers commit offsets only
after the events of a batch are handled (and their outputs made durable by the handler),
so a crash replays the uncommitted tail instead of losing it.

A message that is not a readable event, or that its handler rejects, goes to the
dead-letter topic with the reason and where it came from, and the consumer moves on.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import MemberToRemove
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (CommitFailedError, IllegalGenerationError, IllegalStateError, KafkaConnectionError, KafkaError,
                          KafkaTimeoutError, RebalanceInProgressError, UnknownMemberIdError)

from newswire import codec, disk, logs, metrics, seal, topics
from newswire.codec import ArticleEvent
from newswire.config import Settings

log = logs.get(__name__)

Headers = list[tuple[str, bytes]]


class PublishError(RuntimeError):
    """Kafka did not confirm a write (broker down, timeout, rejected)."""


#: how often a consumer refreshes its metadata (kafka-python's default is 5 minutes): a consumer
#: that joined its group before its topic's partitions were known is assigned nothing, and gets
#: its partitions at the first refresh that finds them (the group leader then rebalances)
METADATA_MAX_AGE_MS = 5000

#: how long a consume loop waits after a retriable error out of ``poll`` before polling again
POLL_RETRY_S = 1.0

#: kafka-python's errors that mean "no broker answered" rather than "a broker said no"
UNREACHABLE = (KafkaTimeoutError, KafkaConnectionError, TimeoutError)  # TimeoutError: a wait of our own ran out

#: group errors kafka-python mends by rejoining at the next poll: not flagged retriable, but one
#: let out of ``poll`` or ``commit`` while the broker restarts is no reason to stop consuming
REJOIN_ERRORS = (UnknownMemberIdError, IllegalGenerationError, RebalanceInProgressError)


def waitable(exc: KafkaError) -> bool:
    """True for a Kafka error that waiting (and, for a group error, rejoining) mends."""
    return exc.retriable or isinstance(exc, REJOIN_ERRORS)


def kafka_problem(settings: Settings, exc: BaseException) -> str:
    """One line for an operator: Kafka at <bootstrap> is not reachable (or what it answered),
    and what to check."""
    where = f"Kafka at {settings.bootstrap_servers}"
    if isinstance(exc, UNREACHABLE):
        return (f"{where} is not reachable ({type(exc).__name__}): check that the broker runs "
                f"(`newswire kafka status`) and that --bootstrap / NEWSWIRE_BOOTSTRAP name it")
    return f"{where} refused the request: {type(exc).__name__}: {exc}"


def producer(settings: Settings, **overrides) -> KafkaProducer:
    """A producer whose confirmed sends are durable: acks=all, idempotent, bounded waits."""
    timeout_ms = int(settings.producer_timeout_s * 1000)
    options = dict(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="newswire-producer",
        acks=settings.producer_acks,
        enable_idempotence=True,
        linger_ms=5,
        max_block_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,  # kafka-python waits 30 s for a first broker otherwise
        request_timeout_ms=timeout_ms,
        delivery_timeout_ms=timeout_ms * 2,
    )
    options.update(overrides)
    return KafkaProducer(**options)


def close_now(kafka: KafkaProducer) -> None:
    """Close a failed producer at once, failing the writes it still holds.

    kafka-python's ``close()`` flushes first and raises while records are pending, and then
    never stops the producer's I/O thread (which would go on trying to send them); so the
    thread is then told to stop without sending (``Sender.force_close``, not public API).
    """
    try:
        kafka.close(timeout=0)
    except KafkaError:
        kafka._sender.force_close()


def event_headers(event: ArticleEvent, schema: codec.Schema) -> Headers:
    """Kafka headers of an article event: its type, writer schema fingerprint and publish time."""
    return [
        ("event_type", event["event_type"].encode()),
        ("schema_fingerprint", schema.fingerprint_hex.encode()),
        ("published_at", datetime.now(timezone.utc).isoformat(timespec="milliseconds").encode()),
        ("event_id", str(event["event_id"]).encode()),
    ]


def send_event(kafka: KafkaProducer, topic: str, event: ArticleEvent, schema: codec.Schema | None = None,
               timestamp_ms: int | None = None, headers: Headers = (), clean_key: str | None = None):
    """Encode and send one event keyed by its article id; returns the send future.

    ``timestamp_ms`` sets the record's timestamp (default: now), e.g. to backdate test events;
    ``headers`` are added to the event's own; ``clean_key``: seal the event as cleaned
    (:mod:`newswire.seal`; only for an event the producer's cleaning made).
    """
    schema = schema or codec.latest()
    value = codec.encode(event, schema)
    sealed = [(seal.HEADER, seal.seal(value, clean_key))] if clean_key else []
    return kafka.send(topic, key=event["article_id"].encode(), value=value,
                      headers=event_headers(event, schema) + sealed + list(headers), timestamp_ms=timestamp_ms)


def publish_events(settings: Settings, kafka: KafkaProducer, events: Iterable[ArticleEvent],
                   headers: Sequence[Headers] = (), *, cleaned: bool = False) -> list:
    """Send events and wait until Kafka confirmed every one; raise PublishError otherwise.
    ``headers``, when given, holds the headers to add to each event, in the order of ``events``;
    ``cleaned``: the producer's cleaning made them, so they are sealed with the installation's
    key (Settings.clean_key; :mod:`newswire.seal`).

    Returns the record metadata (topic, partition, offset) of each event, in order.
    """
    events = list(events)
    extra = list(headers) or [[] for _ in events]
    key = settings.clean_key if cleaned else None
    futures = [send_event(kafka, settings.topics.articles, event, headers=added, clean_key=key)
               for event, added in zip(events, extra, strict=True)]
    try:
        kafka.flush(timeout=settings.producer_timeout_s)
        return [future.get(timeout=settings.producer_timeout_s) for future in futures]
    except KafkaError as exc:
        raise PublishError(
            f"Kafka at {settings.bootstrap_servers} did not confirm the write: {type(exc).__name__}: {exc}"
        ) from exc


def consumer(settings: Settings, group_id: str | None, topics: Iterable[str] | None = None,
             listener: ConsumerRebalanceListener | None = None, **overrides) -> KafkaConsumer:
    """A consumer with manual commits that starts from the beginning of the log.

    It gives up after ``producer_timeout_s`` when no broker answers at start (kafka-python
    waits 30 s otherwise); once started, it waits out a broker that goes away.
    """
    options = dict(
        bootstrap_servers=settings.bootstrap_servers,
        bootstrap_timeout_ms=int(settings.producer_timeout_s * 1000),
        metadata_max_age_ms=METADATA_MAX_AGE_MS,
        group_id=group_id,
        client_id=f"newswire-{group_id or 'reader'}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
    )
    options.update(overrides)
    kafka = KafkaConsumer(**options)
    if topics is not None:
        kafka.subscribe(list(topics), listener=listener)
    return kafka


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode("utf-8", "replace")
    return None


class DeadLetters:
    """Writes unusable messages to the dead-letter topic, unchanged, with why and whence."""

    def __init__(self, settings: Settings, kafka: KafkaProducer, consumer_name: str):
        self.topic = settings.topics.dead_letter
        self.kafka = kafka
        self.consumer_name = consumer_name
        self.timeout_s = settings.producer_timeout_s

    def send(self, record: ConsumerRecord, reason: str) -> None:
        headers = list(record.headers or []) + [
            ("dlq.reason", reason[:2000].encode()),
            ("dlq.consumer", self.consumer_name.encode()),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.at", datetime.now(timezone.utc).isoformat().encode()),
        ]
        self.kafka.send(self.topic, key=record.key, value=record.value, headers=headers)
        log.warning("dead_lettered", consumer=self.consumer_name, topic=record.topic,
                    partition=record.partition, offset=record.offset,
                    key=record.key.decode("utf-8", "replace") if record.key else None, reason=reason)

    def flush(self) -> None:
        self.kafka.flush(timeout=self.timeout_s)


@dataclass(frozen=True)
class Delivery:
    """One decoded article event and where it was read from."""

    event: ArticleEvent
    record: ConsumerRecord

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.record.topic, self.record.partition, self.record.offset)


Handler = Callable[[Delivery], None]


class EventLoop:
    """The consume loop every consumer runs: poll, decode, handle, dead-letter, commit.

    ``handle`` is called once per decoded event, in partition order. A ``ValueError``
    (or any other exception that is not an I/O or Kafka error) raised by it sends that
    event to the dead-letter topic; a full disk is waited out (see :meth:`wait_out_full_disk`);
    any other ``OSError`` or a ``KafkaError`` stops the loop without committing, so the batch
    is read again after a restart. ``before_commit`` runs once per batch, before offsets are
    committed: the place to fsync outputs. ``state`` (where the consumer writes) names the
    place in the ``disk_full`` log line when the error itself does not.

    ``instance_id`` (see :func:`instance_id`) makes the consumer a static member of its group:
    started again after a crash (``kill -9``), it takes its partitions back at once instead of
    waiting for the dead member's session to expire (45 s, during which nothing is consumed);
    :meth:`close` takes it out of the group, since a static member does not leave by itself.
    ``listener`` is told of partitions assigned and revoked (e.g. to seek to stored positions).

    ``write_behind`` (instead of ``before_commit``) overlaps a batch's durable write with the
    reading and handling of the next one: called in the loop's thread once a batch is handled,
    it returns that batch's write (taking what the handler gathered, so that the next batch's
    events go to the next write), which runs in a writer thread; the batch's offsets are
    committed once its write has returned, before the next write starts (one in flight). A
    write that fails for a full disk is run again until it passes (it must be safe to run
    again); any other error stops the loop without committing that batch.
    """

    def __init__(self, settings: Settings, group_id: str, handle: Handler, *,
                 before_commit: Callable[[], None] | None = None,
                 topics: Iterable[str] | None = None, name: str | None = None,
                 consumer_overrides: dict | None = None, instance_id: str | None = None,
                 state: Path | None = None, listener: ConsumerRebalanceListener | None = None,
                 write_behind: Callable[[], Callable[[], None]] | None = None):
        if before_commit and write_behind:
            raise ValueError("before_commit or write_behind, not both")
        self.settings = settings
        self.state = state
        self.name = name or group_id
        self.handle = handle
        self.before_commit = before_commit
        self.group_id, self.instance_id = group_id, instance_id
        overrides = dict(consumer_overrides or {})
        if instance_id:
            overrides["group_instance_id"] = instance_id
        self.consumer = consumer(settings, group_id, topics or [settings.topics.articles], listener, **overrides)
        self._dlq_producer = producer(settings, client_id=f"newswire-{self.name}-dlq")
        self.dead_letters = DeadLetters(settings, self._dlq_producer, self.name)
        self.stopping = threading.Event()
        # this consumer's series, looked up once (``labels`` is a dict look-up under a lock, per event)
        self._handled_total = metrics.EVENTS_CONSUMED.labels(self.name, "handled")
        self._publish_to_output = metrics.PUBLISH_TO_OUTPUT.labels(self.name)
        self.handled = 0
        self.dead_lettered = 0
        self.write_behind = write_behind
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-writer") if write_behind else None
        #: the write in flight: (its future, the write, the offsets it makes committable)
        self._writing: tuple[Future, Callable[[], None], dict[TopicPartition, int]] | None = None

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Handle one batch and commit it; return how many messages it held. A broker or
        coordinator away (a retriable error kafka-python lets out of ``poll``, such as a failed
        coordinator lookup while the broker restarts) is logged and waited out."""
        try:
            batches = self.consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            if not waitable(exc) or self.stopping.is_set():
                raise
            log.warning("poll_retry", consumer=self.name, error=str(exc), retry_in_s=POLL_RETRY_S)
            self.stopping.wait(POLL_RETRY_S)
            return 0
        if self._writing is not None and (not batches or self._writing[0].done()):
            self.settle()  # the write in flight ended (or nothing came): its offsets need not wait
        count = 0
        positions: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            for record in records:
                count += 1
                if not self.wait_out_full_disk(lambda: self._process(record)):
                    return count  # stopped while the disk was full: the batch stays uncommitted
            if records:
                positions[tp] = records[-1].offset + 1
        if count and self.write_behind:
            write = self.write_behind()
            if self.settle():
                self._writing = (self._writer.submit(write), write, positions)
        elif count:
            if self.before_commit and not self.wait_out_full_disk(self.before_commit):
                return count
            self.dead_letters.flush()
            self._commit()
            self._record_lag(positions)
        return count

    def settle(self) -> bool:
        """Wait for the write in flight (``write_behind``) and commit its batch's offsets.
        False when the loop was stopped while a full disk held the write: nothing committed."""
        if self._writing is None:
            return True
        future, write, positions = self._writing
        self._writing = None
        try:
            future.result()
        except Exception as exc:
            if not disk.disk_full(exc):
                raise
            if not self.wait_out_full_disk(write):
                return False
        self.dead_letters.flush()
        self._commit(positions)
        self._record_lag(positions)
        return True

    def _commit(self, positions: dict[TopicPartition, int] | None = None) -> None:
        """Commit the batch's offsets (``positions``: these, else all consumed), waiting out a
        broker or coordinator that is away.

        A rebalance that took the partitions away means their new owner reads the batch
        again (at least once; the event id de-duplicates), so that is logged, not raised.
        """
        delay = 0.5
        while True:
            try:
                self.consumer.commit(None if positions is None else {
                    tp: OffsetAndMetadata(offset, "", -1) for tp, offset in positions.items()})
                return
            except (CommitFailedError, *REJOIN_ERRORS) as exc:
                log.warning("commit_lost_to_rebalance", consumer=self.name, error=str(exc))
                return
            except KafkaError as exc:
                if not exc.retriable or self.stopping.is_set():
                    raise
                log.warning("commit_retry", consumer=self.name, error=str(exc), retry_in_s=delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _record_lag(self, positions: dict[TopicPartition, int]) -> None:
        """Set the lag gauge of each partition the batch moved, from the offsets it handled and
        the highwater of the last fetch. No network call: ``KafkaConsumer.position`` may ask the
        coordinator, and a metric must never stop the consumer (a partition taken away by a
        rebalance meanwhile is skipped)."""
        for tp, position in positions.items():
            try:
                highwater = self.consumer.highwater(tp)
            except IllegalStateError:
                continue
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(self.name, tp.topic, tp.partition).set(max(0, highwater - position))

    def _process(self, record: ConsumerRecord) -> None:
        try:
            event = codec.decode(record.value)
        except codec.DecodeError as exc:
            self._dead_letter(record, f"undecodable: {exc}")
            return
        seal.mark(event, record.value, record.headers, self.settings.clean_key)
        try:
            self.handle(Delivery(event, record))
        except (OSError, KafkaError):
            raise
        except Exception as exc:  # a hostile or broken event must not stop the consumer
            if disk.disk_full(exc):  # SQLite's "database or disk is full": the event is fine
                raise
            self._dead_letter(record, f"rejected by {self.name}: {type(exc).__name__}: {exc}")
            return
        self.handled += 1
        self._handled_total.inc()
        latency = metrics.seconds_since(header(record, "published_at"))
        if latency is not None:
            self._publish_to_output.observe(latency)

    def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        self.dead_letters.send(record, reason)
        self.dead_lettered += 1
        metrics.EVENTS_CONSUMED.labels(self.name, "dead_lettered").inc()

    def wait_out_full_disk(self, step: Callable[[], object]) -> bool:
        """Run ``step`` (one event's handling, ``before_commit``) until it does not fail for a
        full disk or quota (:func:`newswire.disk.disk_full`).

        Each such failure is logged (``disk_full`` with the path and ``retry_in_s``) and the
        step is tried again after a growing, bounded pause (:func:`~newswire.disk.disk_full_pauses`),
        so the consumer resumes by itself once there is room; nothing is committed meanwhile. A step
        must leave nothing half-done when it raises, so that trying it again is safe. Returns
        False when the loop is stopped while waiting: the batch stays uncommitted, to be read
        again after a restart. Any other error is raised.
        """
        return disk.retry_while_disk_full(step, consumer=self.name, path=self.state, stopping=self.stopping)

    def run(self, idle_stop_s: float | None = None) -> None:
        """Consume until :meth:`stop` (or, with ``idle_stop_s``, until that long without messages)."""
        log.info("consumer_started", consumer=self.name, topics=sorted(self.consumer.subscription() or []))
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                if self.poll_once():
                    idle_since = time.monotonic()
                elif idle_stop_s is not None and time.monotonic() - idle_since > idle_stop_s:
                    break
            self.settle()
        finally:
            self.close()

    def stop(self) -> None:
        self.stopping.set()

    def stop_on_signals(self) -> None:
        """Stop cleanly (finish the batch, commit, close) on SIGTERM and SIGINT.

        Call from the main thread of a consumer process before :meth:`run`.
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())

    def close(self) -> None:
        if self._writer:  # a write still in flight (after an error) ends; its batch stays uncommitted
            self._writer.shutdown(wait=True)
        self.consumer.close(autocommit=False)
        if self.instance_id:
            leave_group(self.settings, self.group_id, self.instance_id, f"{self.name} stopped")
        self._dlq_producer.close(timeout=self.settings.producer_timeout_s)
        log.info("consumer_stopped", consumer=self.name, handled=self.handled, dead_lettered=self.dead_lettered)


def instance_id(group_id: str, state: Path) -> str:
    """The static member id of the one consumer of ``group_id`` that keeps its state at ``state``."""
    return f"{group_id}-{hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]}"


def leave_group(settings: Settings, group_id: str, instance_id: str, reason: str) -> None:
    """Take a stopped static member out of its group at once (so that the group can be reset,
    and other members need not wait for its session to expire)."""
    try:
        admin = topics.admin(settings)
    except KafkaError as exc:
        log.warning("consumer_leave_group_failed", group=group_id, instance_id=instance_id, error=str(exc))
        return
    try:
        admin.remove_group_members(group_id, [MemberToRemove(group_instance_id=instance_id, reason=reason)])
        log.info("consumer_left_group", group=group_id, instance_id=instance_id)
    except KafkaError as exc:
        log.warning("consumer_leave_group_failed", group=group_id, instance_id=instance_id, error=str(exc))
    finally:
        admin.close()


class TopicMissing(LookupError):
    """The broker has no such topic (or it has no partitions)."""


def partitions(kafka: KafkaConsumer, topic: str, timeout_s: float = Settings.topic_wait_s) -> list[TopicPartition]:
    """Every partition of ``topic``, in order.

    A new client may answer "none" before it has the topic's metadata, so an empty answer is
    asked again until ``timeout_s`` (a command passes its ``Settings.topic_wait_s``); then
    TopicMissing says the topic is missing.
    """
    deadline = time.monotonic() + timeout_s
    while not (found := kafka.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise TopicMissing(f"topic {topic!r} does not exist or has no partitions "
                               f"(create it with `newswire topics ensure`)")
        time.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(found)]


def end_offsets(kafka: KafkaConsumer, topic: str) -> dict[TopicPartition, int]:
    return kafka.end_offsets(partitions(kafka, topic))
