"""Which partners this pusher sends for: partner leases in the state itself.

Several ``newswire webhooks run`` processes, on one machine or many, may share one PostgreSQL
state. Each partner is sent for by exactly one of them at a time, its lease holder, so that
everything a partner's sending keeps in memory (the one delivery in flight per article, its
concurrency, rate limit, circuit breaker) is kept by one process, as with one pusher.

- Every pusher has a row in ``pushers`` that its heartbeat (every ``lease_s / 3``) keeps
  fresh; one not seen for ``lease_s`` is gone.
- A lease (``partner_leases``) runs out ``lease_s`` after its holder's last heartbeat, on the
  database's clock (machines' clocks need not agree). A pusher takes free or run-out leases
  with ``SELECT … FOR UPDATE SKIP LOCKED``, so two pushers claiming at once never take the same
  partner, up to its fair share (``ceil(partners / live pushers)``); one holding more than
  that lets the surplus go, after its sending for them has stopped and what was in flight is
  recorded, so a joining pusher takes over half the work without a delivery sent twice.
- A pusher killed (``kill -9``) stops renewing: its partners are taken by the others once
  their leases run out. A pusher cannot tell a dead holder from a stalled one, so it sends
  for a partner taken that way only ``quiet_s`` later (the HTTP timeout and a lease: by then
  an attempt the old holder started has ended and been recorded). What the dead one had in
  flight and not recorded is then sent again, with the same ``webhook-id`` and sequence
  number (at least once, as after a restart). A partner let go (a surplus, a clean stop) is
  sent for at once: its old holder stopped first.
- A pusher sends for a partner only while it can count on the lease (:meth:`Leases.holds`,
  checked before every attempt): a pusher that cannot renew (the database away, or its loop
  starved) stops starting attempts before its leases run out, so two pushers never send for
  one partner at once.

A process that sends for one partner alone (``newswire replay --partner P --send``) takes that
partner's lease as a pusher does (:class:`PartnerLease`), but only when it is free or run
out; one held by a live pusher is refused (:class:`LeaseHeld`, naming the holder), as that
pusher already delivers whatever the replay queues. It is not one of the ``pushers`` (the
pushers' fair share is unchanged), renews its lease on the same schedule and releases it when
it stops; killed, its lease runs out and a pusher takes the partner after ``quiet_s``.

On SQLite there are no leases: the one pusher of a state file holds its ``flock``
(:mod:`newswire.locks`) and sends for every partner, and writes nothing more (a full disk
is waited out as before).
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import time
import uuid

import psycopg

from newswire import logs
from newswire.config import Settings
from newswire.consumers.webhooks import store
from newswire.consumers.webhooks.config import WebhookConfig

log = logs.get(__name__)

#: what a store that cannot be reached (or written) raises
_AWAY = (psycopg.Error, sqlite3.Error, OSError)

#: the share of a lease a pusher still counts on after its last heartbeat began (the rest is
#: the margin for a heartbeat that was slow to commit)
_TRUSTED = 0.8


def quiet_s(config: WebhookConfig) -> float:
    """How long a holder waits before sending for a partner taken from a lapsed holder: the
    HTTP timeout and a lease (by then an attempt the old holder started has ended and been
    recorded)."""
    return config.timeout_s + config.lease_s


class LeaseHeld(RuntimeError):
    """A live pusher (or another replay) holds the lease of the partner a one-partner sender wanted."""

    def __init__(self, partner_id: str, holder: str, for_s: float):
        who = "another replay" if holder.startswith("replay:") else "pusher"
        super().__init__(f"partner {partner_id} is sent for by {who} {holder} (its lease runs for {for_s:.1f} s "
                         f"more and is renewed while it runs)")
        self.partner_id = partner_id
        self.holder = holder


class _Holder:
    """What every lease holder has: its id, its connection, and how long it may count on what it holds."""

    def __init__(self, settings: Settings, *, lease_s: float, quiet_s: float, kind: str = ""):
        """``kind``: the start of :attr:`id` (``replay:`` for a one-partner sender, none for a pusher)."""
        self.db = store.connect(settings, synchronous="NORMAL")
        self.lease_s = lease_s
        self.quiet_s = quiet_s
        #: partner → when (monotonic) this holder may start sending for it, taken from a holder
        #: whose lease ran out
        self._quiet: dict[str, float] = {}
        self.host = socket.gethostname()
        self.id = f"{kind}{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.mine: set[str] = set()
        #: held, over the fair share: to let go once this pusher stopped sending for them
        self.surplus: set[str] = set()
        self._trusted_until = 0.0  # monotonic
        self._next_beat = 0.0

    def heartbeat(self) -> None:
        """Renew what this holder holds (and for a pusher, take its share)."""
        raise NotImplementedError

    def owned(self) -> set[str]:
        """The partners to send for now (a heartbeat first when one is due); empty once the
        leases could not be renewed in time."""
        now = time.monotonic()
        if now >= self._next_beat:
            try:
                self.heartbeat()
            except _AWAY as exc:
                self._next_beat = now + min(1.0, self.lease_s / 10)
                log.warning("lease_heartbeat_failed", pusher=self.id, partners=len(self.mine), error=str(exc),
                            sending_stops_in_s=round(max(0.0, self._trusted_until - now), 1))
        if time.monotonic() >= self._trusted_until:
            return set()
        return self.mine - self.surplus

    def holds(self, partner_id: str) -> bool:
        """Whether this holder may start an attempt for this partner now."""
        now = time.monotonic()
        return (partner_id in self.mine and partner_id not in self.surplus and now < self._trusted_until
                and now >= self._quiet.get(partner_id, 0.0))

    def starts_in(self, partner_id: str) -> float:
        """When to look again at a partner :meth:`holds` refused: once its quiet period ends, or
        soon (a lease taken or renewed at the next heartbeat)."""
        return max(self.lease_s / 10, self._quiet.get(partner_id, 0.0) - time.monotonic())

    def beat_in(self) -> float:
        """Seconds until the next heartbeat is due."""
        return max(0.0, self._next_beat - time.monotonic())

    def _renewed(self, started: float) -> None:
        self._quiet = {pid: at for pid, at in self._quiet.items() if pid in self.mine and at > started}
        self._trusted_until = started + self.lease_s * _TRUSTED
        self._next_beat = started + self.lease_s / 3

    def let_go(self, partner_id: str) -> None:
        """Give up a partner this holder no longer sends for (a surplus one, or one it lost)."""
        self.surplus.discard(partner_id)
        if partner_id in self.mine:
            self.mine.discard(partner_id)
            try:
                self.db.execute("UPDATE partner_leases SET owner = '', expires_at = 0"
                                " WHERE partner_id = ? AND owner = ?", (partner_id, self.id))
            except _AWAY as exc:  # it runs out by itself
                log.warning("lease_not_released", pusher=self.id, partner=partner_id, error=str(exc))
                return
            log.info("lease_released", pusher=self.id, partner=partner_id)


class PartnerLease(_Holder):
    """One partner's lease for a process that sends for it alone (a replay's ``--send``); raises
    :class:`LeaseHeld` at once when a live pusher holds it. The same interface as :class:`Leases`
    for the dispatcher."""

    def __init__(self, settings: Settings, partner_id: str, *, lease_s: float, quiet_s: float):
        super().__init__(settings, lease_s=lease_s, quiet_s=quiet_s, kind="replay:")
        self.partner_id = partner_id
        try:
            self._claim(refuse=True)
        except BaseException:
            self.db.close()
            raise

    def heartbeat(self) -> None:
        """Renew the lease, or take it again when it is free or ran out (after the database was
        away); while a live pusher holds it, send nothing (that pusher delivers)."""
        self._claim(refuse=False)

    def _claim(self, *, refuse: bool) -> None:
        started = time.monotonic()
        with self.db.transaction() as db:
            db.execute("INSERT INTO partner_leases (partner_id, owner, expires_at) VALUES (?, '', 0)"
                       " ON CONFLICT DO NOTHING", (self.partner_id,))
            now = db.execute(f"SELECT {db.now}").fetchone()[0]
            owner, expires_at = db.execute(f"SELECT owner, expires_at FROM partner_leases WHERE partner_id = ?"
                                           f"{db.for_update}", (self.partner_id,)).fetchone()
            held = owner not in ("", self.id) and expires_at >= now
            if not held:
                db.execute("UPDATE partner_leases SET owner = ?, expires_at = ? WHERE partner_id = ?",
                           (self.id, now + self.lease_s, self.partner_id))
        if held:
            if refuse:
                raise LeaseHeld(self.partner_id, owner, expires_at - now)
            if self.mine:
                log.warning("leases_lost", pusher=self.id, partners=[self.partner_id], holder=owner)
            self.mine = set()
        elif owner != self.id:
            # a holder whose lease ran out may still have an attempt under way
            lapsed = owner or None
            if lapsed:
                self._quiet[self.partner_id] = started + self.quiet_s
            log.info("lease_taken", pusher=self.id, partner=self.partner_id, from_lapsed_holder=lapsed,
                     sends_after_s=self.quiet_s if lapsed else 0)
            self.mine = {self.partner_id}
        self._renewed(started)

    def close(self) -> None:
        """Release the lease (a pusher takes the partner at its next heartbeat)."""
        try:
            self.let_go(self.partner_id)
        finally:
            self.db.close()


class Leases(_Holder):
    """This pusher's partner leases; :meth:`owned` in the dispatcher's loop, :meth:`let_go` after
    it stopped sending for a partner it no longer holds, :meth:`close` at the end."""

    def heartbeat(self) -> None:
        """Renew this pusher's leases, take its share of the free ones, mark its surplus."""
        started = time.monotonic()
        with self.db.transaction() as db:
            now = db.execute(f"SELECT {db.now}").fetchone()[0]
            until = now + self.lease_s
            db.execute("INSERT INTO pushers (id, host, pid, seen_at) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                       (self.id, self.host, os.getpid(), now))
            db.execute("DELETE FROM pushers WHERE seen_at < ?", (now - self.lease_s,))
            live = db.execute("SELECT count(*) FROM pushers").fetchone()[0]
            partners = db.execute("SELECT count(*) FROM partners").fetchone()[0]
            mine = {pid for (pid,) in db.execute("UPDATE partner_leases SET expires_at = ? WHERE owner = ?"
                                                 " RETURNING partner_id", (until, self.id))}
            share = math.ceil(partners / max(1, live))
            taken: dict[str, str] = {}  # partner → its last holder ('' = let go)
            if len(mine) < share:
                db.execute("INSERT INTO partner_leases (partner_id, owner, expires_at)"
                           " SELECT id, '', 0 FROM partners WHERE TRUE ON CONFLICT DO NOTHING")  # WHERE: SQLite's parser
                taken = dict(db.execute(
                    f"SELECT partner_id, owner FROM partner_leases WHERE expires_at < ? ORDER BY partner_id"
                    f" LIMIT ?{db.for_update}{db.skip_locked}", (now, share - len(mine))).fetchall())
                db.executemany("UPDATE partner_leases SET owner = ?, expires_at = ? WHERE partner_id = ?",
                               [(self.id, until, pid) for pid in taken])
        lost = self.mine - mine
        if lost:
            log.warning("leases_lost", pusher=self.id, partners=sorted(lost))
        if taken:
            ran_out = sorted(pid for pid, owner in taken.items() if owner)
            for pid in ran_out:
                self._quiet[pid] = started + self.quiet_s
            log.info("leases_taken", pusher=self.id, partners=sorted(taken), pushers=live,
                     from_lapsed_holders=ran_out, sends_after_s=self.quiet_s if ran_out else 0)
        self.mine = mine | set(taken)
        self.surplus &= self.mine
        over = len(self.mine) - share
        if over > len(self.surplus):
            self.surplus |= set(sorted(self.mine - self.surplus)[-(over - len(self.surplus)):])
        self._renewed(started)

    def close(self) -> None:
        """Let every lease go and leave (a clean stop: the others take over at their next heartbeat)."""
        try:
            with self.db.transaction() as db:
                db.execute("UPDATE partner_leases SET owner = '', expires_at = 0 WHERE owner = ?", (self.id,))
                db.execute("DELETE FROM pushers WHERE id = ?", (self.id,))
        except _AWAY as exc:  # they run out by themselves
            log.warning("leases_not_released", pusher=self.id, error=str(exc))
        finally:
            self.mine.clear()
            self.db.close()
