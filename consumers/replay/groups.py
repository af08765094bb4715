"""Reset a whole consumer group to the start of a window, like ``kafka-consumer-groups --reset-offsets``.

Every consumer of that kind then re-reads from there. Kafka only accepts new offsets for a
group without active members, so a reset is refused while the group has any: stop its
consumers first (a static member, such as the archive, stays a member until its session
times out).
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import TopicPartition
from kafka.errors import KafkaError, NoError
from kafka.structs import OffsetAndMetadata

from newswire import logs, topics
from newswire.config import Settings
from newswire.rows import cell

from .window import Range

log = logs.get(__name__)


class GroupActive(RuntimeError):
    """The group has active members; its offsets cannot be reset."""


@dataclass(frozen=True)
class Move:
    """One partition of a group reset: where the group is and where it will start again."""

    group: str
    topic: str
    partition: int
    current: int | None
    new: int
    end: int

    @property
    def to_replay(self) -> int:
        return max(0, self.end - self.new)


def members(settings: Settings, group: str) -> tuple[str, list[str]]:
    """The group's state and its active members (``client_id@host``)."""
    admin = topics.admin(settings)
    try:
        description = admin.describe_groups([group])[group]
    finally:
        admin.close()
    state = description.get("group_state") or description.get("state") or "?"
    found = [f"{m.get('client_id')}@{m.get('client_host')}" for m in description.get("members") or []]
    return state, found


class UnknownGroup(LookupError):
    """The broker knows no consumer group of this name (a misspelling, or one that never ran)."""


def check_known(settings: Settings, group: str, state: str) -> None:
    """UnknownGroup, naming the groups the broker has, when ``group`` (in ``state``) is none of them:
    Kafka describes a group it does not know as ``Dead``."""
    if state != "Dead":
        return
    admin = topics.admin(settings)
    try:
        known = sorted(g["group_id"] for g in admin.list_groups())
    finally:
        admin.close()
    if group not in known:
        raise UnknownGroup(f"no consumer group {group!r} at {settings.bootstrap_servers} (groups there: "
                           f"{', '.join(known) or 'none'}); a group is known once its consumers have run")


def plan(settings: Settings, group: str, topic: str, ranges: list[Range], ends: dict[int, int]) -> list[Move]:
    """What a reset of ``group`` to the start of ``ranges`` would change, per partition."""
    admin = topics.admin(settings)
    try:
        committed = admin.list_group_offsets({group: [TopicPartition(topic, r.partition) for r in ranges]})
    finally:
        admin.close()
    current = {tp.partition: om.offset for tp, om in committed.get(group, {}).items()
               if om is not None and om.offset is not None and om.offset >= 0}
    return [Move(group, topic, r.partition, current.get(r.partition), r.start, ends[r.partition]) for r in ranges]


def apply(settings: Settings, moves: list[Move]) -> None:
    """Commit the new offsets; raises :class:`GroupActive` if the group has members."""
    if not moves:
        return
    group = moves[0].group
    state, active = members(settings, group)
    if active:
        raise GroupActive(f"group {group} has {len(active)} active member(s) ({', '.join(active)}; "
                          f"state {state}): stop its consumers, then reset")
    admin = topics.admin(settings)
    try:
        results = admin.alter_group_offsets(group, {
            TopicPartition(m.topic, m.partition): OffsetAndMetadata(m.new, "newswire replay", None) for m in moves})
    finally:
        admin.close()
    failed = {tp: err for tp, err in results.items() if err is not NoError}
    if failed:
        detail = ", ".join(f"{tp.topic}[{tp.partition}]: {err.__name__}" for tp, err in failed.items())
        raise KafkaError(f"Kafka refused the new offsets of group {group}: {detail}")
    for m in moves:
        log.info("group_offset_reset", group=group, topic=m.topic, partition=m.partition, current=m.current,
                 offset=m.new)


#: the columns of a reset plan (`replay --group … --json` keys; upper-cased with '-' in the table)
PLAN_COLUMNS = ("group", "topic", "partition", "current_offset", "new_offset", "log_end_offset", "to_replay")


def plan_rows(moves: list[Move]) -> list[dict]:
    """The plan, one row per partition (current_offset None: the group has no committed offset)."""
    return [dict(zip(PLAN_COLUMNS, (m.group, m.topic, m.partition, m.current, m.new, m.end, m.to_replay)))
            for m in moves]


def table(moves: list[Move]) -> list[str]:
    """Lines in the style of ``kafka-consumer-groups --reset-offsets --dry-run``."""
    head = tuple(c.upper().replace("_", "-") for c in PLAN_COLUMNS)
    rows = [head] + [tuple(cell(row[c]) for c in PLAN_COLUMNS) for row in plan_rows(moves)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(text.ljust(w) for text, w in zip(row, widths)).rstrip() for row in rows]
