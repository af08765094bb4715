"""The status page's actions on a partner, each a POST behind :class:`.operator.Operator`:
pause and resume, redrive its dead deliveries, resend a range of sequence numbers, and a
backfill, counted first by a dry run.

Each goes through the function the CLI uses, so the state file keeps one writer per table:
the registry (:func:`partners.disable` / :func:`partners.enable`), the deliveries' state
(:func:`outbox.redrive`, :func:`receipts.resend`), and the outbox's new rows, which only a
replay (``newswire partners backfill``, run here as that command) queues.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from newswire import logs
from newswire.config import Settings
from newswire.consumers.webhooks import outbox, receipts, store
from newswire.consumers.webhooks import partners as registry
from newswire.status.operator import Operator
from newswire.supervisor import newswire_command
from newswire.timespec import parse_instant

log = logs.get(__name__)

#: how long the dry run of a backfill may take before the page gives up on it
DRY_RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class DryRun:
    since: str  #: the window's start, resolved (the backfill then uses exactly it)
    to_queue: int
    lines: list[str]


def _write(settings: Settings, change: Callable) -> object:
    db = store.connect(settings)
    try:
        return change(db)
    finally:
        db.close()


def backfill_command(settings: Settings, partner: str, since: str, *extra: str) -> tuple[list[str], dict]:
    """`newswire partners backfill PARTNER --since SINCE EXTRA…` as a subprocess runs it (argv, environment)."""
    return (newswire_command("--log-level", "WARNING", "partners", "backfill", partner, "--since", since, *extra),
            {**os.environ, **settings.to_env()})


async def dry_run(settings: Settings, partner: str, since: str) -> DryRun:
    """What ``partners backfill --dry-run`` says it would queue."""
    argv, env = backfill_command(settings, partner, since, "--dry-run", "--json", "--no-progress")
    process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), DRY_RUN_TIMEOUT_S)
    if process.returncode != 0:
        raise ValueError(f"the dry run failed: {err.decode(errors='replace').strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    to_queue = sum(r["outcomes"].get("queued", 0) + r["outcomes"].get("re-sent", 0) for r in rows)
    return DryRun(since, to_queue, [line for line in err.decode(errors="replace").splitlines() if line.strip()])


class Actions:
    def __init__(self, settings: Settings, operator: Operator, render_backfill: Callable):
        self.settings = settings
        self.operator = operator
        self.render_backfill = render_backfill
        self.backfills: set[asyncio.subprocess.Process] = set()

    def add_routes(self, app: web.Application) -> None:
        for name in ("pause", "resume", "redrive", "resend", "backfill"):
            app.router.add_post(f"/partners/{{partner}}/{name}", getattr(self, name))
        app.on_cleanup.append(self._reap)

    async def _act(self, request: web.Request, change: Callable, say: Callable[[object], str]) -> web.Response:
        partner = request.match_info["partner"]
        try:
            result = await asyncio.get_running_loop().run_in_executor(None, _write, self.settings, change)
        except registry.UnknownPartner as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        message = say(result)
        log.info("status_action", partner=partner, action=request.path.rsplit("/", 1)[1], result=message)
        self.operator.tell(request, message)
        raise web.HTTPSeeOther(f"/partners/{partner}")

    async def pause(self, request: web.Request) -> web.Response:
        form, partner = await self.operator.authorize(request), request.match_info["partner"]
        reason = form.get("reason", "").strip() or "paused from the status page"
        return await self._act(request, lambda db: registry.disable(db, partner, reason),
                               lambda _: f"{partner} paused: {reason}")

    async def resume(self, request: web.Request) -> web.Response:
        await self.operator.authorize(request)
        partner = request.match_info["partner"]

        def said(was: registry.Partner) -> str:
            if was.enabled:
                return f"{partner} was already enabled"
            return (f"{partner} resumed (it was paused: {was.disabled_reason or 'by an operator'}); "
                    "stories published meanwhile were not queued: a backfill with its start sends them")
        return await self._act(request, lambda db: registry.enable(db, partner), said)

    async def redrive(self, request: web.Request) -> web.Response:
        await self.operator.authorize(request)
        partner = request.match_info["partner"]

        def change(db):
            registry.get(db, partner)
            return outbox.redrive(db, partner_id=partner)
        return await self._act(request, change, lambda r: f"{partner}: {len(r.redriven)} dead deliveries redriven"
                               + (f", {len(r.superseded)} left dead (a newer version was delivered)"
                                  if r.superseded else ""))

    async def resend(self, request: web.Request) -> web.Response:
        form, partner = await self.operator.authorize(request), request.match_info["partner"]
        try:
            low, high = receipts.parse_seq_range(form.get("seq", ""))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

        def change(db):
            registry.get(db, partner)
            return receipts.resend(db, partner, low, high)
        return await self._act(request, change, lambda seqs: f"{partner}: {len(seqs)} deliveries of seq "
                               f"{low}-{high} sent again with their numbers")

    async def backfill(self, request: web.Request) -> web.Response:
        """Without ``confirm``: the dry run's count, with a button to go on; with it: the backfill,
        started as ``newswire partners backfill`` (its checkpoint shows under Replays)."""
        form, partner = await self.operator.authorize(request), request.match_info["partner"]
        try:
            since = parse_instant(form.get("since", "")).isoformat(timespec="seconds")
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"since: {exc}") from None
        if not form.get("confirm"):
            try:
                counted = await dry_run(self.settings, partner, since)
            except ValueError as exc:
                raise web.HTTPBadRequest(text=str(exc)) from None
            return self.render_backfill(request, partner, counted)
        argv, env = backfill_command(self.settings, partner, since, "--no-progress")
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
        self.backfills.add(process)
        asyncio.ensure_future(process.wait()).add_done_callback(lambda _: self.backfills.discard(process))
        log.info("status_action", partner=partner, action="backfill", since=since, pid=process.pid)
        self.operator.tell(request, f"{partner}: backfill since {since} started (pid {process.pid}); "
                                    "the pusher delivers what it queues")
        raise web.HTTPSeeOther(f"/partners/{partner}")

    async def _reap(self, _: web.Application) -> None:
        await asyncio.gather(*(p.wait() for p in list(self.backfills)), return_exceptions=True)
