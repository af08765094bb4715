"""Replay and backfill: one ``newswire replay`` for every way of catching up.

- :mod:`.window`:     a time window → per-partition offset ranges (``offsets_for_times``)
- :mod:`.groups`:     reset a whole consumer group's offsets (refused while it has members)
- :mod:`.sources`:    events of a window from Kafka (a temporary reader, no group) or the archive
- :mod:`.readahead`:  a source read, decoded and rendered in a process of its own, ahead of the loop
- :mod:`.targets`:    where replayed events go: one partner's delivery path (the webhooks outbox)
- :mod:`.sender`:     ``--send``: the partner's deliveries sent from a process of its own
- :mod:`.checkpoint`: resumable replays
- :mod:`.runner`:     the loop: rate limit, progress bar, checkpoints, summary
- :mod:`.cli`:        ``newswire replay`` and ``newswire partners backfill``
"""
