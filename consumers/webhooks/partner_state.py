"""Each partner's state as an operator (and Prometheus) asks for it, read from the state file:
queue depth, retries pending, dead deliveries, sequence gaps, its circuit breaker, how it takes
its deliveries (push or pull, per-article or strict order) and what holds a strict line.

The breaker itself lives in the pusher's memory; its state follows from the receipts in the
same way (:func:`breaker_state`): failures in a row since the partner last answered, the
threshold and cooldown of :class:`.config.WebhookConfig`. So any process (the status page,
its ``/metrics``) tells it without asking the pusher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from newswire.consumers.webhooks import receipts
from newswire.consumers.webhooks.ordering import Hold, holds
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.dialect import Db


@dataclass(frozen=True)
class PartnerState:
    partner: str
    enabled: bool
    disabled_reason: str | None
    #: deliveries waiting to be sent (the outbox depth), of which have failed at least once
    pending: int
    pending_retries: int
    dead: int
    delivered: int
    last_seq: int
    #: sequence numbers below the highest acknowledged one that are not acknowledged: holes
    #: the partner sees (a number being sent for the first time above them is not one)
    gaps: int
    oldest_pending_at: float | None
    #: failed attempts in a row since the partner last answered, and the latest of them
    failing: int
    last_failure_at: float | None
    #: closed | open | half-open
    breaker: str
    #: push | pull, and article | strict (see :mod:`.partners`)
    mode: str = "push"
    ordering: str = "article"
    #: the dead delivery holding a strict partner's line, if one does (see :mod:`.ordering`)
    hold: Hold | None = None


def breaker_state(failing: receipts.Failing | None, config: WebhookConfig, now: float) -> str:
    """What the pusher's :class:`.policy.CircuitBreaker` is in after these failures: open for
    ``breaker_cooldown_s`` after the threshold is reached, then half-open (one probe goes)."""
    if failing is None or failing.failures < config.breaker_failures:
        return "closed"
    return "open" if now < failing.last_at + config.breaker_cooldown_s else "half-open"


def partner_states(db: Db, config: WebhookConfig, *, now: float | None = None
                   ) -> list[PartnerState]:
    """Every partner's state, ordered by id."""
    now = time.time() if now is None else now
    holes = dict(db.execute(
        "SELECT d.partner_id, count(*) FROM deliveries d WHERE d.status != 'delivered' AND d.seq <"
        " (SELECT max(x.seq) FROM deliveries x WHERE x.partner_id = d.partner_id AND x.status = 'delivered')"
        " GROUP BY d.partner_id").fetchall())
    rows = db.execute(
        "SELECT p.id, p.enabled, p.disabled_reason, p.mode, p.ordering, p.next_seq - 1 AS last_seq,"
        " count(CASE WHEN d.status = 'pending' THEN 1 END) AS pending,"
        " count(CASE WHEN d.status = 'pending' AND d.attempts > 0 THEN 1 END) AS pending_retries,"
        " count(CASE WHEN d.status = 'dead' THEN 1 END) AS dead,"
        " count(CASE WHEN d.status = 'delivered' THEN 1 END) AS delivered,"
        " min(CASE WHEN d.status = 'pending' THEN d.created_at END) AS oldest"
        " FROM partners p LEFT JOIN deliveries d ON d.partner_id = p.id"
        " GROUP BY p.id, p.enabled, p.disabled_reason, p.mode, p.ordering, p.next_seq ORDER BY p.id").fetchall()
    held = holds(db)
    states = []
    for r in rows:
        failing = receipts.failing(db, r["id"])
        states.append(PartnerState(
            partner=r["id"], enabled=bool(r["enabled"]), disabled_reason=r["disabled_reason"],
            pending=r["pending"], pending_retries=r["pending_retries"], dead=r["dead"], delivered=r["delivered"],
            last_seq=r["last_seq"], gaps=holes.get(r["id"], 0), oldest_pending_at=r["oldest"],
            failing=failing.failures if failing else 0, last_failure_at=failing.last_at if failing else None,
            breaker=breaker_state(failing, config, now), mode=r["mode"], ordering=r["ordering"],
            hold=held.get(r["id"])))
    return states
