"""A partner's backfill: the events published since a time, queued again for it by the
replay (``newswire partners backfill``, run as a subprocess, as the status page runs it), so
that what is queued goes through the outbox's one writer with the replay's rules: its
subscription and embargo decide as for live events, an older version never follows a newer
one, and a story killed or withdrawn since is never sent (a partner that had it gets the
kill instead).

A dry run counts first and changes nothing; one runs at a time per partner, and at most
:data:`DRY_RUNS` at once in this process (each reads the log in a process of its own: past
that the answer is 429, not a queue). The real run is limited: a window of at most
:data:`MAX_WINDOW_DAYS`, one backfill at a time per partner in this process, at most
:data:`PER_DAY` started per partner in 24 hours (counted in the audit log, shared by every
process), at most :data:`RATE` events a second.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

from newswire import logs
from newswire.consumers.partner_api import audit
from newswire.consumers.partner_api.context import Context
from newswire.status.actions import DryRun, backfill_command, dry_run
from newswire.timespec import parse_instant

log = logs.get(__name__)

MAX_WINDOW_DAYS = 30
PER_DAY = 5
RATE = 50
DRY_RUNS = 2
#: the audit action of a started backfill (what PER_DAY counts)
ACTION = "POST /v1/backfill"


class TooMany(Exception):
    """The partner started its backfills of the day, or one still runs (429)."""


def window_start(text: str, now: datetime | None = None) -> str:
    """``since`` as an ISO time (an ISO 8601 time, or a duration back: 12h, 7d), within the window."""
    now = now or datetime.now(timezone.utc)
    if not isinstance(text, str) or not text.strip() or len(text) > 64:
        raise ValueError("since: an ISO 8601 time or a duration back from now (12h, 7d) is required")
    try:
        since = parse_instant(text.strip(), now)
    except ValueError as exc:
        raise ValueError(f"since: {exc}") from None
    if since < now - timedelta(days=MAX_WINDOW_DAYS):
        raise ValueError(f"since: at most {MAX_WINDOW_DAYS} days back (the agency backfills older windows)")
    if since > now:
        raise ValueError("since: is in the future")
    return since.isoformat(timespec="seconds")


class Backfills:
    """The backfills this process started, by partner."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.counting: set[str] = set()

    async def count(self, partner_id: str, since: str) -> DryRun:
        if partner_id in self.counting:
            raise TooMany("a dry run of yours still runs: wait for its answer")
        if len(self.counting) >= DRY_RUNS:
            raise TooMany(f"{DRY_RUNS} dry runs are counting already: try again in a minute")
        self.counting.add(partner_id)
        try:
            return await dry_run(self.ctx.settings, partner_id, since)
        finally:
            self.counting.discard(partner_id)

    async def start(self, partner_id: str, since: str) -> int:
        """Start the backfill; its pid."""
        if partner_id in self.running and self.running[partner_id].returncode is None:
            raise TooMany(f"a backfill of yours still runs (pid {self.running[partner_id].pid})")
        started = await self.ctx.run(lambda db: audit.count(db, partner_id, ACTION, status=202,
                                                            since_at=time.time() - 86400))
        if started >= PER_DAY:
            raise TooMany(f"{PER_DAY} backfills were started in the last 24 hours: try again later")
        argv, env = backfill_command(self.ctx.settings, partner_id, since, "--no-progress", "--rate", str(RATE))
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
        self.running[partner_id] = process
        log.info("partner_backfill_started", partner=partner_id, since=since, pid=process.pid)
        return process.pid

    async def close(self) -> None:
        await asyncio.gather(*(p.wait() for p in self.running.values()), return_exceptions=True)
