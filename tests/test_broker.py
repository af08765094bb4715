"""The local broker and topic creation, against the real broker."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from newswire import topics
from newswire.broker import broker_answers, free_port


def test_broker_answers_admin_calls(kafka_broker):
    assert kafka_broker.running_pid() is not None
    assert broker_answers(kafka_broker.bootstrap)


def test_nothing_answers_on_a_closed_port():
    assert not broker_answers(f"127.0.0.1:{free_port()}", timeout_s=0.5)
    assert not broker_answers(f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}", timeout_s=0.5)


def test_a_bootstrap_list_answers_when_one_of_its_brokers_does(kafka_broker):
    # a cluster's bootstrap names several brokers; one being away is not Kafka being away (/healthz)
    assert broker_answers(f"127.0.0.1:{free_port()}, {kafka_broker.bootstrap}")


def test_topics_ensure_creates_with_configuration_and_is_idempotent(settings):
    # the fixture already ensured once: a second run creates nothing
    assert set(topics.ensure(settings).values()) == {"exists"}
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        described = {t["name"]: t for t in admin.describe_topics([settings.topics.articles])}
        assert len(described[settings.topics.articles]["partitions"]) == settings.topics.articles_partitions
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topics.articles)])
        assert configs["topic"][settings.topics.articles]["retention.ms"]["value"] == "-1"
    finally:
        admin.close()
