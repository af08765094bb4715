"""The partner registry: who gets pushes, where, in which format, signed with what.

Stored in the pusher's SQLite state file (see :mod:`.store`), managed by operators with
``newswire partners add|list|show|update|disable|enable|rotate-secret``; a running pusher
picks changes up within a second or two.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field, replace
from typing import Iterable

from newswire import logs
from newswire.consumers.webhooks import dialect, signing
from newswire.consumers.webhooks.config import Network, parse_cidrs
from newswire.consumers.webhooks.dialect import Db
from newswire.consumers.webhooks.filters import Subscription
from newswire.formats import registry as formats

log = logs.get(__name__)

#: the formats a partner may take (newswire.formats.registry)
FORMATS = tuple(formats.FORMATS)
#: how a partner takes its deliveries: the pusher sends them, or the partner fetches them (see .pull)
MODES = ("push", "pull")
#: in what order: per article (articles in parallel up to the concurrency), or strictly by number
#: (one at a time; see .ordering)
ORDERINGS = ("article", "strict")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class UnknownPartner(LookupError):
    pass


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    url: str
    format: str = "ninjs"
    subscription: Subscription = field(default_factory=Subscription)
    concurrency: int = 4
    #: requests per second, 0 = unlimited
    rate_limit: float = 0.0
    enabled: bool = True
    disabled_reason: str | None = None
    #: when it was disabled (epoch seconds): stories published from then on were not queued for it
    disabled_at: float | None = None
    #: it asked (Retry-After) not to be called before then (epoch seconds; kept by the pusher)
    paused_until: float | None = None
    #: [current] or [current, previous] during a rotation
    secrets: tuple[str, ...] = ()
    #: until when the previous secret signs too (epoch seconds; None: until the rotation is ended)
    previous_secret_until: float | None = None
    allow_cidrs: tuple[Network, ...] = ()
    #: push | pull (:data:`MODES`); a pull partner needs no URL
    mode: str = "push"
    #: article | strict (:data:`ORDERINGS`)
    ordering: str = "article"

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"id: {self.id!r} must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
        if not self.name.strip():
            raise ValueError("name: must not be empty")
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if self.ordering not in ORDERINGS:
            raise ValueError(f"ordering: {self.ordering!r} is not one of {', '.join(ORDERINGS)}")
        if self.mode == "push" and not self.url:
            raise ValueError("url: a partner that takes pushes needs an endpoint URL (or mode pull)")
        if self.format not in FORMATS:
            raise ValueError(f"format: {self.format!r} is not one of {', '.join(FORMATS)}")
        if not 1 <= self.concurrency <= 256:
            raise ValueError(f"concurrency: must be 1 to 256, got {self.concurrency}")
        if self.rate_limit < 0:
            raise ValueError(f"rate_limit: must be >= 0 (0 = unlimited), got {self.rate_limit}")
        if not 1 <= len(self.secrets) <= 2:
            raise ValueError("secrets: a partner has one signing secret, or two during a rotation")
        for secret in self.secrets:
            signing.check_secret(secret)
        if self.previous_secret_until is not None and len(self.secrets) != 2:
            raise ValueError("previous_secret_until: only during a rotation (two secrets)")

    def signing_secrets(self, now: float) -> tuple[str, ...]:
        """The secrets that sign at ``now``: the previous one no longer once its time is up."""
        if self.previous_secret_until is not None and now >= self.previous_secret_until:
            return self.secrets[:1]
        return self.secrets

    @property
    def pushed(self) -> bool:
        """The pusher sends its deliveries (else the partner pulls them)."""
        return self.mode == "push"

    @property
    def strict(self) -> bool:
        """One delivery at a time, in number order (see :mod:`.ordering`)."""
        return self.ordering == "strict"

    @property
    def content_type(self) -> str:
        """The media type of the partner's deliveries."""
        return formats.get(self.format).push_media_type

    def allowed(self, extra: Iterable[Network] = ()) -> tuple[Network, ...]:
        return tuple(self.allow_cidrs) + tuple(extra)


def _from_row(row: sqlite3.Row) -> Partner:
    return Partner(id=row["id"], name=row["name"], url=row["url"], format=row["format"],
                   subscription=Subscription.from_json(row["filters"]), concurrency=row["concurrency"],
                   rate_limit=row["rate_limit"], enabled=bool(row["enabled"]),
                   disabled_reason=row["disabled_reason"], disabled_at=row["disabled_at"],
                   paused_until=row["paused_until"], secrets=tuple(json.loads(row["secrets"])),
                   previous_secret_until=row["previous_secret_until"],
                   allow_cidrs=parse_cidrs(",".join(json.loads(row["allow_cidrs"]))), mode=row["mode"],
                   ordering=row["ordering"])


def get(db: Db, partner_id: str) -> Partner:
    row = db.execute("SELECT * FROM partners WHERE id = ?", (partner_id,)).fetchone()
    if row is None:
        raise UnknownPartner(f"no partner {partner_id!r}")
    return _from_row(row)


def get_many(db: Db, partner_ids: Iterable[str]) -> list[Partner]:
    """These partners, those that exist (a query per 500)."""
    return [_from_row(row)
            for row in db.select_in("SELECT * FROM partners WHERE id IN (...)", sorted(set(partner_ids)))]


def all_partners(db: Db) -> list[Partner]:
    return [_from_row(row) for row in db.execute("SELECT * FROM partners ORDER BY id")]


@dataclass(frozen=True)
class Claimed:
    """What :func:`claim_seqs` read of the partners a batch is queued for."""

    #: partner id → its next sequence number
    numbers: dict[str, int]
    #: those of them that pull their deliveries, in id order
    pulling: list[str]


def claim_seqs(db: Db, partner_ids: Iterable[str]) -> Claimed:
    """These partners' next sequence numbers, claimed until the transaction ends (PostgreSQL:
    their rows locked in id order, so that two writers never deadlock; SQLite's write
    transaction already excludes every other writer), and which of them pull: one read of
    their rows."""
    numbers, pulling = {}, []
    for partner_id, next_seq, mode in db.select_in(
            f"SELECT id, next_seq, mode FROM partners WHERE id IN (...) ORDER BY id{db.for_update}",
            sorted(set(partner_ids))):
        numbers[partner_id] = next_seq
        if mode == "pull":
            pulling.append(partner_id)
    return Claimed(numbers, pulling)


def set_next_seqs(db: Db, numbers: dict[str, int]) -> None:
    """Move partners' next sequence numbers on (by :func:`.outbox.enqueue`, in its transaction)."""
    db.executemany("UPDATE partners SET next_seq = ? WHERE id = ?", [(n, pid) for pid, n in numbers.items()],
                   keyed=True)


#: outcomes of an attempt that mean the partner answered (what ends a run of failures), and those
#: that count in one (a throttled attempt does neither: see .policy.CircuitBreaker)
ANSWERED, FAILED = ("delivered", "gone"), ("retry", "dead")


@dataclass
class _Run:
    answered: bool = False
    failures: int = 0
    last_failure_at: float | None = None
    pause_until: float = 0.0


def note_attempts(db: Db, attempts: Iterable[tuple[str, str, float, float | None]]) -> None:
    """What these ``(partner id, outcome, at, pause until)`` tell of their partners: a run of
    failed attempts (``failing``, ``last_failure_at``), which an answer ends and a failure after
    the last answer adds to, and a ``Retry-After`` pause (a later pause wins). One update per
    partner, in id order (the order enqueue locks partners in, on PostgreSQL)."""
    runs: dict[str, _Run] = {}
    for partner_id, outcome, at, pause_until in sorted(attempts, key=lambda a: a[2]):
        run = runs.setdefault(partner_id, _Run())
        if outcome in ANSWERED:
            run.answered, run.failures, run.last_failure_at = True, 0, None
        elif outcome in FAILED:
            run.failures, run.last_failure_at = run.failures + 1, at
        run.pause_until = max(run.pause_until, pause_until or 0.0)
    # a partner that keeps answering is only looked up: an update whose WHERE matches nothing writes nothing
    db.executemany(
        f"UPDATE partners SET paused_until = {db.greatest}(coalesce(paused_until, 0), ?),"
        " failing = CASE WHEN ? THEN ? ELSE failing + ? END,"
        f" last_failure_at = CASE WHEN ? THEN ? ELSE {db.greatest}(coalesce(last_failure_at, 0), ?) END"
        " WHERE id = ? AND (? OR failing <> 0)",
        [(run.pause_until, run.answered, run.failures, run.failures, run.answered, run.last_failure_at,
          run.last_failure_at, pid, bool(run.failures or run.pause_until or not run.answered))
         for pid, run in sorted(runs.items())], keyed=True)


#: changes this recent are read again (a writer that took its time before another may commit
#: after it, with an earlier time)
CHANGE_OVERLAP_S = 5.0


def changed_since(db: Db, since: float, *, now: float | None = None, seen: dict[str, float] | None = None
                  ) -> tuple[list[Partner], float]:
    """Partners added or changed after ``since`` (their ``updated_at``; all when ``since`` is 0),
    and those changed in the last :data:`CHANGE_OVERLAP_S`; and the time to ask from next.

    ``seen`` (partner id → ``updated_at``, kept by the caller across calls) leaves out the
    partners already answered as they are (a bulk import of 10,000 partners is otherwise
    parsed again on every look for :data:`CHANGE_OVERLAP_S`)."""
    recent = (time.time() if now is None else now) - CHANGE_OVERLAP_S
    rows = db.execute("SELECT * FROM partners WHERE updated_at > ? ORDER BY id",
                      (min(since, recent),)).fetchall()
    if seen is not None:
        fresh = [row for row in rows if seen.get(row["id"]) != row["updated_at"]]
        seen.update((row["id"], row["updated_at"]) for row in fresh)
    else:
        fresh = rows
    return [_from_row(row) for row in fresh], max((row["updated_at"] for row in rows), default=since)


def outbox_changed(db: Db, partner_ids: Iterable[str], at: float) -> None:
    """Say that these partners' deliveries were changed (made pending again) by this process,
    for the pusher to read them again (:func:`outbox_changes`)."""
    db.executemany("UPDATE partners SET outbox_changed_at = ? WHERE id = ?",
                   [(at, pid) for pid in sorted(set(partner_ids))])  # in id order, as enqueue locks them


def outbox_changes(db: Db, since: float, *, now: float | None = None
                   ) -> tuple[list[str], float]:
    """Partners whose deliveries another process changed after ``since`` (or in the last
    :data:`CHANGE_OVERLAP_S`), and the time to ask from next."""
    recent = (time.time() if now is None else now) - CHANGE_OVERLAP_S
    rows = db.execute("SELECT id, outbox_changed_at FROM partners WHERE outbox_changed_at > ?",
                      (min(since, recent),)).fetchall()
    return [pid for pid, _ in rows], max((at for _, at in rows), default=since)


def _write(db: Db, partner: Partner, *, new: bool) -> None:
    values = dict(id=partner.id, name=partner.name, url=partner.url, format=partner.format,
                  filters=partner.subscription.to_json(), concurrency=partner.concurrency,
                  rate_limit=partner.rate_limit, enabled=int(partner.enabled),
                  disabled_reason=partner.disabled_reason, disabled_at=partner.disabled_at,
                  secrets=json.dumps(list(partner.secrets)), previous_secret_until=partner.previous_secret_until,
                  allow_cidrs=json.dumps([str(n) for n in partner.allow_cidrs]), mode=partner.mode,
                  ordering=partner.ordering, now=time.time())
    if new:
        try:
            db.execute("INSERT INTO partners (id, name, url, format, filters, concurrency, rate_limit, enabled,"
                       " disabled_reason, disabled_at, secrets, previous_secret_until, allow_cidrs, mode, ordering,"
                       " created_at, updated_at) VALUES (:id, :name, :url, :format, :filters, :concurrency,"
                       " :rate_limit, :enabled, :disabled_reason, :disabled_at, :secrets, :previous_secret_until,"
                       " :allow_cidrs, :mode, :ordering, :now, :now)",
                       values)
        except dialect.IntegrityError as exc:
            raise ValueError(f"id: a partner {partner.id!r} already exists") from exc
    else:
        cursor = db.execute("UPDATE partners SET name=:name, url=:url, format=:format, filters=:filters,"
                            " concurrency=:concurrency, rate_limit=:rate_limit, enabled=:enabled,"
                            " disabled_reason=:disabled_reason, disabled_at=:disabled_at, secrets=:secrets,"
                            " previous_secret_until=:previous_secret_until, allow_cidrs=:allow_cidrs,"
                            " mode=:mode, ordering=:ordering, updated_at=:now WHERE id=:id", values)
        if cursor.rowcount == 0:
            raise UnknownPartner(f"no partner {partner.id!r}")


def check_endpoint(partner: Partner, allow: Iterable[Network] = ()) -> None:
    """An HTTP endpoint goes through the SSRF guard; a drop folder (``file:///dir``) must be an
    absolute local path (see :mod:`.transports`); a pull partner may have none."""
    if partner.url or partner.pushed:
        # here, not at the top: the pusher's Kafka side reads the registry and registers no one,
        # and so never loads the HTTP stack (aiohttp, httptools: 9 MiB of its memory)
        from newswire.consumers.webhooks import transports
        transports.check_endpoint(partner.url, partner.allowed(allow))


def add(db: Db, partner: Partner, *, allow: Iterable[Network] = ()) -> Partner:
    """Register a partner after checking its endpoint (SSRF guard, or a drop folder's path)."""
    check_endpoint(partner, allow)
    if not partner.enabled and partner.disabled_at is None:
        partner = replace(partner, disabled_at=time.time())
    _write(db, partner, new=True)
    log.info("partner_added", partner=partner.id, url=partner.url, format=partner.format)
    return partner


def update(db: Db, partner_id: str, *, allow: Iterable[Network] = (), **changes) -> Partner:
    """Change some fields of a partner (an URL change is checked again)."""
    old = get(db, partner_id)
    partner = replace(old, **changes)
    if partner.url != old.url or partner.allow_cidrs != old.allow_cidrs or (partner.pushed and not old.pushed):
        check_endpoint(partner, allow)
    _write(db, partner, new=False)
    log.info("partner_updated", partner=partner_id, changed=sorted(changes))
    return partner


def disable(db: Db, partner_id: str, reason: str) -> Partner:
    """Disable a partner; one already disabled keeps the time it was first disabled."""
    old = get(db, partner_id)
    since = old.disabled_at if not old.enabled and old.disabled_at is not None else time.time()
    partner = update(db, partner_id, enabled=False, disabled_reason=reason, disabled_at=since)
    log.warning("partner_disabled", partner=partner_id, reason=reason)
    return partner


def enable(db: Db, partner_id: str) -> Partner:
    """Enable a partner; returns it as it was (disabled since when, why)."""
    old = get(db, partner_id)
    update(db, partner_id, enabled=True, disabled_reason=None, disabled_at=None)
    log.info("partner_enabled", partner=partner_id, disabled_since=old.disabled_at)
    return old


#: how long a rotation's previous secret goes on signing unless told otherwise (as Svix does)
DEFAULT_OVERLAP_S = 86400.0
#: the longest overlap a rotation may give the previous secret
MAX_OVERLAP_S = 7 * 86400.0


def rotate_secret(db: Db, partner_id: str, *, new_secret: str | None = None, drop_old: bool = False,
                  overlap_s: float = DEFAULT_OVERLAP_S, now: float | None = None) -> Partner:
    """Start a rotation: a new current secret, the old one signing beside it for ``overlap_s``
    more (0: not at all; a rotation during a rotation drops the oldest). Or with ``drop_old``
    end a rotation early: only the current secret signs."""
    partner = get(db, partner_id)
    until = None
    if drop_old:
        secrets = partner.secrets[:1]
    else:
        if not 0 <= overlap_s <= MAX_OVERLAP_S:
            raise ValueError(f"overlap_s: must be 0 to {MAX_OVERLAP_S:g} seconds, got {overlap_s:g}")
        new = signing.check_secret(new_secret) if new_secret else signing.new_secret()
        if overlap_s:
            secrets, until = (new, partner.secrets[0]), (time.time() if now is None else now) + overlap_s
        else:
            secrets = (new,)
    partner = update(db, partner_id, secrets=secrets, previous_secret_until=until)
    log.info("partner_secret_rotated", partner=partner_id, signing_secrets=len(secrets), previous_secret_until=until)
    return partner


def skip_dead(db: Db, partner_id: str, through: int, *, now: float | None = None) -> None:
    """Let a strict partner's line pass its dead deliveries numbered up to ``through`` (they stay
    dead: gaps, which a resend still sends); the pusher sees it as an outbox change."""
    now = time.time() if now is None else now
    cursor = db.execute(f"UPDATE partners SET strict_skipped = {db.greatest}(strict_skipped, ?),"
                        " outbox_changed_at = ? WHERE id = ?", (through, now, partner_id))
    if cursor.rowcount == 0:
        raise UnknownPartner(f"no partner {partner_id!r}")
    log.info("strict_line_skipped", partner=partner_id, through_seq=through)
