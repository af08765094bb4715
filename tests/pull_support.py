"""The partner API (its real app, with its tokens) on a real port, and a partner's client of
its pull routes (consumers/partner_api/changes.py), for the pull tests and bench/pull.py."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import requests
from aiohttp import web

from newswire.config import Settings
from newswire.consumers.partner_api import changes
from newswire.consumers.partner_api.app import create_app
from tests.http_server import serving
from tests.partner_api_support import issue
from tests.webhooks_support import config

#: requests a token may make (the pull tests and the bench poll far more than a partner should)
UNLIMITED = "1000000/minute"


@dataclass
class PullClient:
    """A partner's HTTP client of the pull routes, with its own token."""

    base: str
    partner: str
    http: requests.Session
    app: web.Application
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)

    def _headers(self) -> dict[str, str]:
        if self.partner not in self.tokens:
            self.tokens[self.partner] = issue(self.settings, self.partner).secret
        return {"Authorization": f"Bearer {self.tokens[self.partner]}"}

    def get(self, *, after: int | None = None, limit: int | None = None, wait: float | None = None,
            **raw: str) -> requests.Response:
        params = {k: v for k, v in (("after", after), ("limit", limit), ("wait", wait)) if v is not None}
        return self.http.get(f"{self.base}/v1/changes", params={**params, **raw}, headers=self._headers(),
                             timeout=60)

    def changes(self, **kwargs) -> dict:
        answer = self.get(**kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def set_mode(self, **body) -> requests.Response:
        return self.http.put(f"{self.base}/v1/delivery-mode", json=body, headers=self._headers(), timeout=30)

    def as_partner(self, partner: str) -> "PullClient":
        return PullClient(self.base, partner, self.http, self.app, self.settings, self.tokens)

    def waiting(self) -> int:
        """How many long polls the server has waiting (read from its thread's objects)."""
        return self.app[changes.WATCH].waiters


def partner_api_app(settings: Settings) -> web.Application:
    return create_app(settings, webhook_config=config(), rate=UNLIMITED)


@contextlib.contextmanager
def pull_api(settings: Settings, partner: str) -> Iterator[PullClient]:
    """The partner API served on 127.0.0.1 until the block ends, and a client for ``partner``."""
    app = partner_api_app(settings)
    with serving(app) as base, requests.Session() as http:
        yield PullClient(base, partner, http, app, settings)
