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
    #: every delivery it has had acknowledged, those retention has forgotten too (numbers assigned
    #: less pending and dead)
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


def partner_states(db: Db, config: WebhookConfig, *, now: float | None = None, only: str | None = None
                   ) -> list[PartnerState]:
    """Every partner's state (or ``only`` that one's), ordered by id.

    What it reads grows with the partners and with what is not delivered (pending, dead), not
    with what was: those counts come from the unacknowledged deliveries' index, ``delivered``
    from the partner's sequence counter, the run of failures from the partner's row."""
    now = time.time() if now is None else now
    where, args = (" AND d.partner_id = ?", (only,)) if only else ("", ())
    holes = dict(db.execute(
        "SELECT d.partner_id, count(*) FROM deliveries d WHERE d.status != 'delivered' AND d.seq <"
        " (SELECT max(x.seq) FROM deliveries x WHERE x.partner_id = d.partner_id AND x.status = 'delivered')"
        f"{where} GROUP BY d.partner_id", args).fetchall())
    undelivered = {r["partner_id"]: r for r in db.execute(
        "SELECT d.partner_id, count(CASE WHEN d.status = 'pending' THEN 1 END) AS pending,"
        " count(CASE WHEN d.status = 'pending' AND d.attempts > 0 THEN 1 END) AS pending_retries,"
        " count(CASE WHEN d.status = 'dead' THEN 1 END) AS dead,"
        " min(CASE WHEN d.status = 'pending' THEN d.created_at END) AS oldest"
        f" FROM deliveries d WHERE d.status != 'delivered'{where} GROUP BY d.partner_id", args)}
    partners = db.execute(
        "SELECT id, enabled, disabled_reason, mode, ordering, next_seq - 1 AS last_seq, failing, last_failure_at"
        f" FROM partners{' WHERE id = ?' if only else ''} ORDER BY id", args).fetchall()
    held = holds(db, only)
    states = []
    for p in partners:
        u = undelivered.get(p["id"])
        pending, retries, dead, oldest = ((u["pending"], u["pending_retries"], u["dead"], u["oldest"]) if u
                                          else (0, 0, 0, None))
        failing = receipts.Failing(p["failing"], p["last_failure_at"]) if p["failing"] else None
        states.append(PartnerState(
            partner=p["id"], enabled=bool(p["enabled"]), disabled_reason=p["disabled_reason"],
            pending=pending, pending_retries=retries, dead=dead, delivered=p["last_seq"] - pending - dead,
            last_seq=p["last_seq"], gaps=holes.get(p["id"], 0), oldest_pending_at=oldest,
            failing=p["failing"], last_failure_at=p["last_failure_at"] if failing else None,
            breaker=breaker_state(failing, config, now), mode=p["mode"], ordering=p["ordering"],
            hold=held.get(p["id"])))
    return states
