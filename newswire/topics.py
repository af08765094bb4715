"""The topics newswire uses, and ``ensure``: create them idempotently with their configuration.

Every consumer that needs a topic of its own (retries, receipts, partner registry, ...)
adds a :class:`TopicSpec` to :func:`required_topics`, so that ``newswire topics ensure``
creates everything the system uses in one step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from newswire import logs
from newswire.config import Settings

log = logs.get(__name__)

KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def required_topics(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    return [
        TopicSpec(t.articles, t.articles_partitions, KEEP_FOREVER,
                  "every article event, keyed by article id, kept for ever: the source of truth"),
        TopicSpec(t.dead_letter, t.dead_letter_partitions, KEEP_FOREVER,
                  "events a consumer could not use, with the reason in the headers"),
    ]


def admin(settings: Settings) -> KafkaAdminClient:
    """An admin client that gives up after ``producer_timeout_s`` when no broker answers
    (kafka-python waits 30 s for a first broker otherwise)."""
    timeout_ms = int(settings.producer_timeout_s * 1000)
    return KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="newswire-admin",
                            request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)


@dataclass(frozen=True)
class FoundTopic:
    """A topic as the broker has it: its partition count and the configuration set on it."""

    partitions: int
    config: dict[str, str]


def describe(settings: Settings, specs: list[TopicSpec] | None = None) -> list[tuple[TopicSpec, FoundTopic | None]]:
    """Each topic the system uses with what the broker has of it (None: it does not exist)."""
    specs = required_topics(settings) if specs is None else specs
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        present = [spec.name for spec in specs if spec.name in existing]
        if not present:
            return [(spec, None) for spec in specs]
        partitions = {t["name"]: len(t["partitions"]) for t in client.describe_topics(present)}
        configs = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in present])
        set_on = {name: {key: str(entry["value"]) for key, entry in values.items()}
                  for name, values in configs["topic"].items()}
        return [(spec, FoundTopic(partitions[spec.name], set_on.get(spec.name, {})) if spec.name in existing else None)
                for spec in specs]
    finally:
        client.close()


def ensure(settings: Settings, specs: list[TopicSpec] | None = None) -> dict[str, str]:
    """Create every missing topic; return ``{name: "created" | "exists"}``.

    An existing topic is left as it is, but a partition count below the configured one
    is reported, since adding partitions would move article ids to other partitions.
    """
    specs = required_topics(settings) if specs is None else specs
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        outcome: dict[str, str] = {}
        for spec in specs:
            if spec.name in existing:
                outcome[spec.name] = "exists"
                continue
            try:
                client.create_topics([NewTopic(spec.name, spec.partitions, settings.replication_factor,
                                               topic_configs=spec.config)])
                outcome[spec.name] = "created"
                log.info("topic_created", topic=spec.name, partitions=spec.partitions, config=spec.config)
            except TopicAlreadyExistsError:  # created meanwhile by another process
                outcome[spec.name] = "exists"
        _await_listed(client, [name for name, what in outcome.items() if what == "created"],
                      settings.producer_timeout_s)
        return outcome
    finally:
        client.close()


def _await_listed(client: KafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Wait until the broker's metadata lists the topics just created: a create answers before
    the metadata has them, and a `topics list` or a consumer right after would not see them."""
    deadline = time.monotonic() + timeout_s
    while names and not set(names) <= set(client.list_topics()):
        if time.monotonic() > deadline:
            log.warning("topics_not_listed_yet", topics=names, waited_s=timeout_s)
            return
        time.sleep(0.05)
