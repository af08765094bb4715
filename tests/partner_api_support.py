"""A partner API on a real port and a small HTTP client for it (aiohttp), for the partner API tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from newswire.consumers.partner_api import tokens
from newswire.consumers.webhooks import store


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error(self) -> dict:
        """The first error's field and problem."""
        return self.json["errors"][0]


def call(base: str, method: str, path: str, *, token: str | None = None, body: Any = None,
         headers: dict[str, str] | None = None, data: bytes | None = None) -> Answer:
    """One HTTP request to the running API."""
    async def go() -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with aiohttp.ClientSession() as client:
            async with client.request(method, base + path, json=body, data=data, headers=sent,
                                      allow_redirects=False) as answer:
                return Answer(answer.status, dict(answer.headers), await answer.text())
    return asyncio.run(go())


def issue(settings, partner_id: str, **options) -> tokens.Issued:
    db = store.connect(settings)
    try:
        return tokens.issue(db, partner_id, **options)
    finally:
        db.close()
