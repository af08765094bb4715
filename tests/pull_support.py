"""The pull routes (consumers/partner_api/changes.py) on a real port, for the tests, while the
partner API's own app is not on this branch.

LEAD, AT THE MERGE: this stands in for the partner API's authentication. Its middleware takes
the partner from the ``X-Test-Partner`` header; switch :func:`pull_api` to the real app
(consumers/partner_api/app.py, with ``changes`` in ROUTE_MODULES) and a token per partner
(``Authorization: Bearer nwp_…``), and drop the middleware.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Iterator

import requests
from aiohttp import web

from newswire.config import Settings
from newswire.consumers.partner_api import changes
from tests.http_server import serving
from tests.webhooks_support import config

#: the stand-in for the partner API's authentication
PARTNER_HEADER = "X-Test-Partner"


@web.middleware
async def _partner_from_header(request: web.Request, handler):
    request["partner_id"] = request.headers[PARTNER_HEADER]
    return await handler(request)


@dataclass
class PullClient:
    """A partner's HTTP client of the pull routes."""

    base: str
    partner: str
    http: requests.Session
    app: web.Application

    def get(self, *, after: int | None = None, limit: int | None = None, wait: float | None = None,
            **raw: str) -> requests.Response:
        params = {k: v for k, v in (("after", after), ("limit", limit), ("wait", wait)) if v is not None}
        return self.http.get(f"{self.base}/v1/changes", params={**params, **raw},
                             headers={PARTNER_HEADER: self.partner}, timeout=60)

    def changes(self, **kwargs) -> dict:
        answer = self.get(**kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def set_mode(self, **body) -> requests.Response:
        return self.http.put(f"{self.base}/v1/delivery-mode", json=body, headers={PARTNER_HEADER: self.partner},
                             timeout=30)

    def as_partner(self, partner: str) -> "PullClient":
        return PullClient(self.base, partner, self.http, self.app)

    def waiting(self) -> int:
        """How many long polls the server has waiting (read from its thread's objects)."""
        return self.app[changes.WATCH].waiters


def stand_in_app(settings: Settings) -> web.Application:
    """The pull routes behind the stand-in authentication (the partner named by a header)."""
    app = web.Application(middlewares=[_partner_from_header])
    changes.add_routes(app, SimpleNamespace(settings=settings, config=config()))
    return app


@contextlib.contextmanager
def pull_api(settings: Settings, partner: str) -> Iterator[PullClient]:
    """The pull routes served on 127.0.0.1 until the block ends, and a client for ``partner``."""
    app = stand_in_app(settings)
    with serving(app) as base, requests.Session() as http:
        yield PullClient(base, partner, http, app)
