"""Strict in-order delivery, for a partner whose ingest needs its numbers one after the other
(partner setting ``ordering = strict``; the default, ``article``, keeps order per article only).

A strict partner has at most one delivery in flight, and number N+1 never goes before N is
delivered: the dispatcher sends only the lowest-numbered delivery it has pending for the partner
(:class:`StrictLine`), so a delivery being retried holds the line, and so does a dead one,
until it is redriven (``newswire deliveries redrive``) or skipped (``newswire deliveries skip``,
which leaves it dead, a gap to resend later). What holds a line is read from the store
(:func:`hold`), so every process agrees on it and a restarted pusher keeps holding it. An
embargoed story the partner is not entitled to holds the line until its embargo lifts (it was
numbered when it was published). A pull serves a strict partner the same way (:mod:`.pull`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Callable, Iterable

from newswire.consumers.webhooks.dialect import Db
from newswire.consumers.webhooks.outbox import Pending
from newswire.consumers.webhooks.partners import Partner


@dataclass(frozen=True)
class Hold:
    """A dead delivery holding a strict partner's line."""

    partner_id: str
    seq: int
    last_error: str | None

    def reason(self) -> str:
        return (f"strict order: seq {self.seq} is dead ({self.last_error or 'no answer'}); nothing after it goes"
                f" until `newswire deliveries redrive --partner {self.partner_id}` or"
                f" `newswire deliveries skip --partner {self.partner_id} --through {self.seq}`")


def hold(db: Db, partner_id: str) -> Hold | None:
    """The lowest dead delivery of a pushed strict partner that its line has not been told to
    pass, if any."""
    return holds(db, partner_id).get(partner_id)


def holds(db: Db, partner_id: str | None = None) -> dict[str, Hold]:
    """:func:`hold` of every pushed strict partner (or of ``partner_id``) whose line is held, in
    one query (the status page)."""
    where, args = (" AND p.id = ?", (partner_id,)) if partner_id else ("", ())
    rows = db.execute(
        "SELECT d.partner_id, d.seq, d.last_error FROM deliveries d JOIN partners p ON p.id = d.partner_id"
        " WHERE p.ordering = 'strict' AND p.mode = 'push' AND d.status = 'dead' AND d.seq = (SELECT min(x.seq)"
        " FROM deliveries x WHERE x.partner_id = d.partner_id AND x.status = 'dead'"
        f" AND x.seq > p.strict_skipped){where}",
        args).fetchall()
    return {r["partner_id"]: Hold(r["partner_id"], r["seq"], r["last_error"]) for r in rows}


def held_reason(db: Db, partner: Partner) -> str | None:
    """Why a strict partner's pushes are held (None: they are not, or the partner is not strict, or
    pulls: a pull hands a dead delivery out like any other)."""
    held = hold(db, partner.id)
    return held.reason() if held else None


class StrictLine:
    """A strict partner's pending deliveries in the dispatcher's schedule, lowest number first.

    ``scheduled(d)`` says whether ``d`` is still in the schedule (a delivery that left it is
    dropped from the line when it comes to the front)."""

    def __init__(self, scheduled: Callable[[Pending], bool], held_at: int | None = None,
                 pending: Iterable[Pending] = ()):
        self.scheduled = scheduled
        #: the number of the dead delivery holding the line (None: nothing holds it)
        self.held_at = held_at
        self._heap = [(d.seq, d.id, d) for d in pending]
        heapq.heapify(self._heap)

    def add(self, d: Pending) -> None:
        heapq.heappush(self._heap, (d.seq, d.id, d))

    def first(self) -> Pending | None:
        """The lowest-numbered delivery in the schedule."""
        while self._heap and not self.scheduled(self._heap[0][2]):
            heapq.heappop(self._heap)
        return self._heap[0][2] if self._heap else None

    def allows(self, d: Pending, in_flight: bool) -> bool:
        """``d`` may go: nothing of the partner is in flight, it is the lowest number pending,
        and no dead delivery below it holds the line."""
        return not in_flight and self.first() is d and (self.held_at is None or d.seq < self.held_at)

    def died(self, d: Pending) -> None:
        self.held_at = d.seq if self.held_at is None else min(self.held_at, d.seq)
