"""Consumer lag per group and partition, from the broker's own records (admin API)."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import TopicPartition
from kafka.admin import OffsetSpec

from newswire import topics
from newswire.config import Settings


@dataclass(frozen=True)
class PartitionLag:
    group: str
    state: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


def group_lag(settings: Settings, topic: str | None = None) -> list[PartitionLag]:
    """Committed offset, end offset and lag of every consumer group on ``topic`` (articles by default)."""
    topic = topic or settings.topics.articles
    admin = topics.admin(settings)
    try:
        groups = {g["group_id"]: g.get("group_state") or "?" for g in admin.list_groups()}
        if not groups:
            return []
        committed = admin.list_group_offsets({group: None for group in groups})
        partitions = admin.describe_topics([topic])[0]["partitions"]
        tps = [TopicPartition(topic, p["partition_index"]) for p in partitions]
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        rows = []
        for group, state in sorted(groups.items()):
            offsets = committed.get(group) or {}
            if not any(tp.topic == topic for tp in offsets):
                continue
            for tp in tps:
                position = offsets.get(tp)
                rows.append(PartitionLag(group, str(state), topic, tp.partition,
                                         position.offset if position else None, ends[tp].offset))
        return rows
    finally:
        admin.close()
