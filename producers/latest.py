"""The latest event of an article, read back from the articles topic; kills and withdrawals.

A kill or a withdrawal carries the whole story as it stood (the contract: every event is the
story at that version), so the producer first finds the article's latest event; so does every
publication, to publish each version once (producers/once.py). The key's
partition is computed with kafka-python's own DefaultPartitioner (murmur2 of the key, as
every producer of the topic does), and that partition is read backwards from its end, in
chunks, by a consumer assigned to it (no consumer group, nothing committed).
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner

from newswire import bus, codec, logs
from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.sanitize import clean_text

from .article import MAX_VERSION, ArticleError, FieldError, now_utc

log = logs.get(__name__)

CHUNK = 500
MAX_REASON_CHARS = 2000
#: the Kafka header carrying the ingest API's Idempotency-Key of the request that made an event
IDEMPOTENCY_HEADER = "idempotency_key"


def key_headers(idempotency_key: str | None) -> bus.Headers:
    """The Kafka headers recording ``idempotency_key`` on the event it made (none without a key)."""
    return [] if idempotency_key is None else [(IDEMPOTENCY_HEADER, idempotency_key.encode())]


class ArticleNotFound(LookupError):
    """No event of this article id is on the articles topic."""


class _Partitions:
    """The part of kafka-python's ClusterMetadata that DefaultPartitioner reads."""

    def __init__(self, topic: str, partitions: set[int]):
        self._topic, self._partitions = topic, partitions

    def topics(self) -> set[str]:
        return {self._topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


def partition_of(article_id: str, topic: str, partitions: set[int]) -> int:
    """The partition a producer writes ``article_id`` to (kafka-python's DefaultPartitioner)."""
    key = article_id.encode()
    return DefaultPartitioner().partition(topic, article_id, key, None, None, _Partitions(topic, partitions))


@dataclass(frozen=True)
class Stored:
    """An event on the articles topic, where it is, and the Idempotency-Key it was sent with."""

    event: ArticleEvent
    topic: str
    partition: int
    offset: int
    idempotency_key: str | None = None


@dataclass
class _Partition:
    """What look-ups learnt of one partition: once one read it whole (``upto`` >= 0), the offset
    of the last record of every key below ``upto``."""

    upto: int = -1
    last: dict[bytes, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ArticleIndex:
    """Where each article's last event is, per partition of the articles topic, for the
    partitions a look-up has had to read whole (an article with no event yet). Rebuilt from the
    topic by each process and brought up to the partition's end before each answer, so it is the
    topic's answer, not a memory of this process's writes. Shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[tuple[str, int], _Partition] = {}

    def partition(self, tp: TopicPartition) -> _Partition:
        with self._lock:
            return self._partitions.setdefault((tp.topic, tp.partition), _Partition())


class ArticleLog:
    """Reads the latest event of articles back from the articles topic, with one reader reused
    for every look-up (a batch of files, one request). Not thread-safe: one per thread; the
    ``index`` (:class:`ArticleIndex`) may be shared, and spares a look-up of an article that has
    no event the read of the whole partition once the index knows it."""

    def __init__(self, settings: Settings, *, timeout_s: float | None = None, index: ArticleIndex | None = None):
        self.settings = settings
        self.topic = settings.topics.articles
        self.timeout_s = timeout_s or settings.producer_timeout_s
        self.index = index or ArticleIndex()
        self._reader = bus.consumer(settings, None, bootstrap_timeout_ms=int(self.timeout_s * 1000),
                                    request_timeout_ms=int(self.timeout_s * 1000) + 1000, max_poll_records=CHUNK)
        self._partitions: set[int] | None = None

    def __enter__(self) -> "ArticleLog":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close(autocommit=False)

    def latest(self, article_id: str) -> Stored:
        """The last event of ``article_id``; ArticleNotFound when there is none.

        The key's partition is read backwards from its end (or, when the index knows the
        partition, from the key's last record after bringing the index up to the end)."""
        try:  # the client's metadata (refreshed every few seconds): a long-lived reader sees new partitions
            self._partitions = {tp.partition for tp in bus.partitions(self._reader, self.topic, self.timeout_s)}
        except LookupError:
            raise ArticleNotFound(f"topic {self.topic} does not exist at "
                                  f"{self.settings.bootstrap_servers}") from None
        reader, topic = self._reader, self.topic
        tp = TopicPartition(topic, partition_of(article_id, topic, self._partitions))
        reader.assign([tp])
        begin, end = reader.beginning_offsets([tp])[tp], reader.end_offsets([tp])[tp]
        key = article_id.encode()
        known = self.index.partition(tp)
        with known.lock:
            if known.upto > end:  # the topic was deleted and made again: start over
                known.upto, known.last = -1, {}
            if known.upto >= 0:
                for first in range(known.upto, end, CHUNK):
                    known.last.update((r.key, r.offset) for r in _read(reader, tp, first, min(end, first + CHUNK),
                                                                        self.timeout_s) if r.key is not None)
                known.upto = end
                end = known.last.get(key, begin - 1) + 1
            stored = self._scan_back(article_id, tp, begin, end, known)
        if stored is None:
            raise ArticleNotFound(f"article {article_id!r} has no event on topic {topic} "
                                  f"(partition {tp.partition} searched)")
        return stored

    def _scan_back(self, article_id: str, tp: TopicPartition, begin: int, end: int, known: _Partition
                   ) -> Stored | None:
        """The last decodable record of ``article_id`` below ``end``; a scan that reaches ``begin``
        without finding one has seen the whole partition and gives the index its keys."""
        key, top, last = article_id.encode(), end, {}
        while end > begin:
            start = max(begin, end - CHUNK)
            records = _read(self._reader, tp, start, end, self.timeout_s)
            for record in reversed(records):
                if record.key is not None:
                    last.setdefault(record.key, record.offset)
                if record.key != key:
                    continue
                try:
                    event = codec.decode(record.value)
                except codec.DecodeError as exc:
                    log.warning("latest_event_undecodable", article_id=article_id, topic=tp.topic,
                                partition=tp.partition, offset=record.offset, reason=str(exc))
                    continue
                log.info("latest_event_found", article_id=article_id, version=event["version"],
                         event_id=event["event_id"], topic=tp.topic, partition=tp.partition, offset=record.offset)
                return Stored(event, tp.topic, tp.partition, record.offset, bus.header(record, IDEMPOTENCY_HEADER))
            end = start
        if known.upto < 0:  # the whole partition was read: remember where every key's last record is
            known.last, known.upto = last, top
        return None

    def latest_or_none(self, article_id: str) -> Stored | None:
        """:meth:`latest`, or None for an article (or a topic) with no event yet."""
        try:
            return self.latest(article_id)
        except ArticleNotFound:
            return None


class ArticleLogs:
    """The look-up readers of a long-lived process (the ingest API, one CLI call): one
    :class:`ArticleLog` per thread, kept open from one look-up to the next (opening one costs a
    connection and a metadata round trip, about 0.1 s), all sharing one :class:`ArticleIndex`.
    A reader that met any error but a missing article (a Kafka error, a timeout) is closed, and
    the thread's next look-up opens a new one."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.index = ArticleIndex()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[ArticleLog] = set()

    @contextmanager
    def reader(self) -> Iterator[ArticleLog]:
        """This thread's reader (opened on first use; KafkaError when no broker answers)."""
        articles: ArticleLog | None = getattr(self._local, "articles", None)
        if articles is None:
            articles = ArticleLog(self.settings, index=self.index)
            with self._lock:
                self._open.add(articles)
            self._local.articles = articles
        try:
            yield articles
        except LookupError:
            raise
        except BaseException:
            self._local.articles = None
            self._close(articles)
            raise

    def _close(self, articles: ArticleLog) -> None:
        with self._lock:
            self._open.discard(articles)
        articles.close()

    def close(self) -> None:
        """Close every reader (when no look-up runs any more)."""
        with self._lock:
            readers, self._open = list(self._open), set()
        for articles in readers:
            articles.close()


def latest_event(settings: Settings, article_id: str, *, timeout_s: float | None = None) -> ArticleEvent:
    """The last event of ``article_id`` on the articles topic; ArticleNotFound when there is none."""
    with ArticleLog(settings, timeout_s=timeout_s) as articles:
        return articles.latest(article_id).event


def _read(reader: KafkaConsumer, tp: TopicPartition, start: int, end: int, timeout_s: float) -> list:
    """The records of ``tp`` at offsets ``start`` .. ``end - 1`` (fewer where the log was compacted)."""
    reader.seek(tp, start)
    records: list = []
    deadline = time.monotonic() + timeout_s
    while reader.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {tp.topic}[{tp.partition}] offsets {start}..{end} took over {timeout_s} s")
        batch = reader.poll(timeout_ms=500, max_records=CHUNK).get(tp, [])
        records.extend(r for r in batch if r.offset < end)
    return records


def kill_event(latest: ArticleEvent, reason: str, *, at: datetime | None = None) -> ArticleEvent:
    """The kill of an article: must not be used any more (legal, ethical). Version latest+1."""
    return _end_event(latest, "killed", reason, at)


def withdraw_event(latest: ArticleEvent, reason: str, *, at: datetime | None = None) -> ArticleEvent:
    """The withdrawal of an article: withheld for now. Version latest+1."""
    return _end_event(latest, "withdrawn", reason, at)


def reason_text(reason: object) -> str:
    """A kill's or withdrawal's reason as its event carries it (cleaned, trimmed)."""
    return clean_text(reason).strip() if isinstance(reason, str) else ""


def _end_event(latest: ArticleEvent, event_type: str, reason: str, at: datetime | None) -> ArticleEvent:
    problems = []
    cleaned = reason_text(reason)
    if not cleaned:
        problems.append(FieldError("reason", f"is required: say why the article is {event_type}"))
    elif len(cleaned) > MAX_REASON_CHARS:
        problems.append(FieldError("reason", f"is {len(cleaned)} characters long; at most {MAX_REASON_CHARS} allowed"))
    if latest["event_type"] == "killed":
        problems.append(FieldError("article_id", f"{latest['article_id']} was killed at version "
                                                 f"{latest['version']}; a kill is final"))
    elif latest["version"] >= MAX_VERSION:
        problems.append(FieldError("article_id", f"{latest['article_id']} is at version {latest['version']}, "
                                                 f"the last the event contract can hold"))
    elif latest["event_type"] == event_type:
        problems.append(FieldError("article_id", f"{latest['article_id']} is already {event_type} "
                                                 f"(version {latest['version']})"))
    if problems:
        raise ArticleError(problems)
    event = dict(latest)
    event.update(event_id=str(uuid.uuid4()), event_type=event_type, version=latest["version"] + 1,
                 occurred_at=at or now_utc(), body="", word_count=0, correction_note=None, kill_reason=cleaned)
    return event
