"""The status server: pages an operator works from, ``/api/status`` for scripts, and ``/metrics``.

* ``GET /`` — the overview, rendered on the server (data in the first paint, no script
  needed; a small script swaps in a fresh copy every few seconds): charts of the last hours,
  consumer lag, partners (health, queue, dead, gaps, circuit), dead letters, the latest
  deliveries, kill reports, replays.
* ``GET /partners/{id}`` — one partner: health, breaker, queue, gaps, latest attempts with
  their answers, and (signed in) its actions (:mod:`.actions`, behind :mod:`.operator`).
* ``GET /search?q=`` — an article id or event id: every version, every partner, each attempt.
* ``GET /api/status`` — the overview's sections as JSON; ``GET /metrics`` — Prometheus;
  ``GET /healthz`` — 200 while the server answers.

The status is assembled from sources, each a callable returning one section: consumer lag
(admin API), the dead-letter tally, and the webhook state (partners' health, latest
deliveries and kill reports from the receipts), replays in progress (their checkpoints).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Callable

import jinja2
from aiohttp import web
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, generate_latest

from newswire import bus, lag, logs, metrics
from newswire.config import Settings
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.status import charts, lookup
from newswire.status.actions import Actions, DryRun
from newswire.status.dead_letters import DeadLetterTally
from newswire.status.gauges import StatusCollector
from newswire.status.operator import Operator
from newswire.status.sections import partner_states, standard_sections

log = logs.get(__name__)

Section = Callable[[], Any]

#: how long one refresh of the page may wait for Kafka (the page refreshes every few seconds)
KAFKA_TIMEOUT_S = 2.0
REFRESH_S = 3

_templates = jinja2.Environment(loader=jinja2.PackageLoader("newswire.status", "templates"), autoescape=True,
                                trim_blocks=True, lstrip_blocks=True)


def lag_section(settings: Settings) -> Section:
    def section() -> list[dict]:
        return [{**row.__dict__, "lag": row.lag} for row in lag.group_lag(settings)]
    return section


def make_app(settings: Settings, *, webhook_config: WebhookConfig | None = None, operator_token: str | None = None,
             feeds_url: str | None = None) -> web.Application:
    """The status app. ``webhook_config``: the pusher's (its breaker, for the circuit state);
    ``operator_token``: enables the actions (:mod:`.operator`); ``feeds_url``: the feed server's
    base URL, for links to each version's items."""
    config = webhook_config or WebhookConfig()
    quick = replace(settings, producer_timeout_s=min(settings.producer_timeout_s, KAFKA_TIMEOUT_S))
    tally = DeadLetterTally(quick)
    states = partner_states(settings, config)
    sections: dict[str, Section] = {"lag": lag_section(quick), "dead_letters": tally.snapshot,
                                    **standard_sections(settings)}
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(StatusCollector(lambda: lag.group_lag(quick), states, tally))
    operator = Operator(operator_token)
    loop_of = asyncio.get_running_loop

    def page(request: web.Request, template: str, **values: Any) -> web.Response:
        sid = operator.session(request)
        html = _templates.get_template(template).render(
            operator=operator, signed_in=sid is not None, csrf=operator.csrf(sid), here=request.path_qs,
            messages=operator.messages(request), **values)
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    def status() -> dict[str, Any]:
        #: section -> one line saying why it is empty (shown instead of "none")
        problems: dict[str, str] = {}
        body: dict[str, Any] = {"bootstrap": settings.bootstrap_servers, "problems": problems}
        for name, section in sections.items():
            try:
                body[name] = section()
            except (KafkaError, OSError) as exc:  # one source down must not blank the page
                problems[name] = bus.kafka_problem(settings, exc) if isinstance(exc, KafkaError) else str(exc)
                log.warning("status_section_failed", section=name, error=problems[name])
                body[name] = []
        if tally.problem:
            problems["dead_letters"] = tally.problem
        return body

    def overview_values() -> dict[str, Any]:
        s = status()
        latest = s["dead_letters"]["latest"]
        dead_now = lookup.still_dead(settings, [d["delivery_id"] for d in latest if d["delivery_id"] is not None])
        shown = [d for d in latest if d["delivery_id"] is None or d["delivery_id"] in dead_now]
        s["dead_letters"] = {**s["dead_letters"], "latest": shown, "redriven": len(latest) - len(shown)}
        s["updated"] = datetime.now(timezone.utc).strftime("%H:%M:%S UTC")
        now = time.time()
        drawn: list[charts.Chart] = []
        if db := lookup.state_db(settings):
            try:
                drawn += charts.delivery_charts(db, now=now)
            finally:
                db.close()
        if index := lookup.archive_index(settings):
            try:
                drawn.append(charts.published_chart(index, now=now))
            finally:
                index.close()
        return {"s": s, "states": {st.partner: st for st in states()}, "charts": drawn, "svg": charts.svg,
                "hours": charts.HOURS, "refresh_s": REFRESH_S}

    async def overview(request: web.Request) -> web.Response:
        return page(request, "overview.html", **await loop_of().run_in_executor(None, overview_values))

    async def api_status(_: web.Request) -> web.Response:
        body = await loop_of().run_in_executor(None, status)
        return web.json_response(body, dumps=_dumps, headers={"Cache-Control": "no-store"})

    async def partner(request: web.Request) -> web.Response:
        try:
            found = await loop_of().run_in_executor(None, lookup.partner_page, settings, config,
                                                    request.match_info["partner"])
        except registry.UnknownPartner as exc:
            raise web.HTTPNotFound(text=f"{exc}: the overview (/) lists the partners") from None
        return page(request, "partner.html", p=found)

    async def search(request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()
        if not query:
            raise web.HTTPSeeOther("/")
        found = await loop_of().run_in_executor(None, lookup.search, settings, query)
        return page(request, "search.html", found=found, query=query, feeds_url=feeds_url)

    async def login_form(request: web.Request) -> web.Response:
        return page(request, "login.html", next=_local(request.query.get("next", "/")), failed=False)

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        target = _local(str(form.get("next", "/")))
        if not operator.token_matches(str(form.get("token", ""))):
            log.warning("status_login_refused", remote=request.remote)
            response = page(request, "login.html", next=target, failed=True)
            response.set_status(401)
            return response
        response = web.HTTPSeeOther(target)
        operator.sign_in(response, request)
        log.info("status_login", remote=request.remote)
        raise response

    async def logout(request: web.Request) -> web.Response:
        await operator.authorize(request)
        response = web.HTTPSeeOther("/")
        operator.sign_out(request, response)
        raise response

    def backfill_page(request: web.Request, partner_id: str, run: DryRun) -> web.Response:
        return page(request, "backfill.html", partner=partner_id, run=run)

    async def healthz(_: web.Request) -> web.Response:
        """The server answers (a container's health check); what it reads is on the page."""
        return web.json_response({"status": "ok"})

    async def metrics_page(_: web.Request) -> web.Response:
        """This process's own metrics, then the gauges read from the system's records."""
        own, content_type = metrics.exposition()
        body = own + await loop_of().run_in_executor(None, generate_latest, gauges)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def start_tally(_: web.Application) -> None:
        tally.start()

    async def stop_tally(_: web.Application) -> None:
        await loop_of().run_in_executor(None, tally.stop)

    app = web.Application()
    app.router.add_get("/", overview)
    app.router.add_get("/partners/{partner}", partner)
    app.router.add_get("/search", search)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    Actions(settings, operator, backfill_page).add_routes(app)
    app.on_startup.append(start_tally)
    app.on_cleanup.append(stop_tally)
    return app


def _local(target: str) -> str:
    """A redirect target on this server only (no ``//host`` or ``scheme:``)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
