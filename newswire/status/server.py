"""The status page's server: one HTML page that refreshes itself from ``/api/status``, and ``/metrics``.

The status is assembled from sources, each a callable returning one section: consumer lag
(admin API), the dead-letter tally, and whatever the installed parts add (partners' health,
latest deliveries and kill reports from the webhook receipts; replay progress from checkpoints).
"""

from __future__ import annotations

import asyncio
import importlib.resources
from dataclasses import replace
from typing import Any, Callable

from aiohttp import web
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, generate_latest

from newswire import bus, lag, logs, metrics
from newswire.config import Settings
from newswire.status.dead_letters import DeadLetterTally
from newswire.status.gauges import StatusCollector

log = logs.get(__name__)

Section = Callable[[], Any]

PAGE = importlib.resources.files("newswire.status").joinpath("page.html").read_bytes()


#: how long one refresh of the page may wait for Kafka (the page refreshes every 3 s)
KAFKA_TIMEOUT_S = 2.0


def lag_section(settings: Settings) -> Section:
    def section() -> list[dict]:
        return [{**row.__dict__, "lag": row.lag} for row in lag.group_lag(settings)]
    return section


def make_app(settings: Settings, extra_sections: dict[str, Section] | None = None,
             partners: Callable[[], list] = list) -> web.Application:
    """The status app. ``partners``: every partner's state (:mod:`.sections`), for the gauges."""
    quick = replace(settings, producer_timeout_s=min(settings.producer_timeout_s, KAFKA_TIMEOUT_S))
    tally = DeadLetterTally(quick)
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(StatusCollector(lambda: lag.group_lag(quick), partners, tally))
    sections: dict[str, Section] = {"lag": lag_section(quick), "dead_letters": tally.snapshot,
                                    "partners": list, "deliveries": list, "kills": list, "replays": list}
    sections.update(extra_sections or {})

    async def page(_: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def status(_: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        #: section -> one line saying why it is empty (shown instead of "none")
        problems: dict[str, str] = {}
        body: dict[str, Any] = {"bootstrap": settings.bootstrap_servers, "problems": problems}
        for name, section in sections.items():
            try:
                body[name] = await loop.run_in_executor(None, section)
            except (KafkaError, OSError) as exc:  # one source down must not blank the page
                problems[name] = bus.kafka_problem(settings, exc) if isinstance(exc, KafkaError) else str(exc)
                log.warning("status_section_failed", section=name, error=problems[name])
                body[name] = []
        if tally.problem:
            problems["dead_letters"] = tally.problem
        return web.json_response(body, dumps=_dumps, headers={"Cache-Control": "no-store"})

    async def metrics_page(_: web.Request) -> web.Response:
        """This process's own metrics, then the gauges read from the system's records."""
        loop = asyncio.get_running_loop()
        own, content_type = metrics.exposition()
        body = own + await loop.run_in_executor(None, generate_latest, gauges)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def start_tally(_: web.Application) -> None:
        tally.start()

    async def stop_tally(_: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, tally.stop)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/api/status", status)
    app.router.add_get("/metrics", metrics_page)
    app.on_startup.append(start_tally)
    app.on_cleanup.append(stop_tally)
    return app


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, default=str, ensure_ascii=False)
