"""A live tally of the dead-letter topic: counts by consumer and reason, and the latest entries."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timezone

from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from newswire import bus, logs
from newswire.config import Settings

log = logs.get(__name__)

#: pause between attempts to reach Kafka
RETRY_S = 5.0


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    reason: str
    key: str | None
    #: where it came from: ``topic/partition@offset`` for a message a consumer could not use,
    #: ``partner P seq N`` for a delivery whose retries were used up
    source: str
    at: str
    #: the webhook delivery it stands for (a redrive revives it), or None
    delivery_id: int | None = None


def dead_letter(record: ConsumerRecord) -> DeadLetter:
    """What a record of the dead-letter topic says. The pusher's dead deliveries carry
    ``webhook.*`` headers instead of ``dlq.topic/partition/offset``; a record without ``dlq.at``
    is dated by its Kafka timestamp (when it was written)."""
    partner, delivery = bus.header(record, "webhook.partner"), bus.header(record, "webhook.delivery_id")
    if partner is not None:
        source = f"partner {partner} seq {bus.header(record, 'webhook.seq')} v{bus.header(record, 'webhook.version')}"
    else:
        source = (f"{bus.header(record, 'dlq.topic')}/{bus.header(record, 'dlq.partition')}"
                  f"@{bus.header(record, 'dlq.offset')}")
    at = bus.header(record, "dlq.at") or datetime.fromtimestamp(record.timestamp / 1000, timezone.utc).isoformat()
    return DeadLetter(consumer=bus.header(record, "dlq.consumer") or "?", reason=bus.header(record, "dlq.reason") or "?",
                      key=record.key.decode("utf-8", "replace") if record.key else None, source=source, at=at,
                      delivery_id=int(delivery) if delivery and delivery.isdigit() else None)


def reason_class(reason: str) -> str:
    """The kind of a reason, for counting: the text before its first colon ("undecodable", ...)."""
    return reason.split(":", 1)[0].strip() or "unknown"


class DeadLetterTally:
    """Reads the dead-letter topic from its beginning in a thread and keeps counts up to date."""

    def __init__(self, settings: Settings, keep_latest: int = 20):
        self.settings = settings
        self.counts: Counter[tuple[str, str]] = Counter()
        self.latest: deque[DeadLetter] = deque(maxlen=keep_latest)
        self._lock = threading.Lock()
        #: why the tally is not reading (Kafka not reachable), or None
        self.problem: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dead-letter-tally", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def add(self, entry: DeadLetter) -> None:
        with self._lock:
            self.counts[(entry.consumer, reason_class(entry.reason))] += 1
            self.latest.appendleft(entry)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "total": sum(self.counts.values()),
                "by_reason": [{"consumer": c, "reason": r, "count": n}
                              for (c, r), n in self.counts.most_common()],
                "latest": [entry.__dict__ for entry in self.latest],
            }

    def _run(self) -> None:
        """Read the topic; while Kafka cannot be reached (or the topic does not exist yet), say so
        (``problem``) and try again."""
        while not self._stop.is_set():
            try:
                self._read()
                return
            except (KafkaError, LookupError) as exc:
                self.problem = bus.kafka_problem(self.settings, exc) if isinstance(exc, KafkaError) else str(exc)
                log.warning("dead_letter_tally_waiting", topic=self.settings.topics.dead_letter,
                            error=self.problem, retry_in_s=RETRY_S)
                self._stop.wait(RETRY_S)

    def _read(self) -> None:
        topic = self.settings.topics.dead_letter
        reader = bus.consumer(self.settings, None)
        try:
            reader.assign(bus.partitions(reader, topic, self.settings.topic_wait_s))
            if self.problem:
                log.info("dead_letter_tally_connected", topic=topic)
            self.problem = None
            with self._lock:  # read again from the beginning
                self.counts.clear()
                self.latest.clear()
            reader.seek_to_beginning()
            while not self._stop.is_set():
                for records in reader.poll(timeout_ms=500).values():
                    for record in records:
                        self.add(dead_letter(record))
        finally:
            reader.close()
