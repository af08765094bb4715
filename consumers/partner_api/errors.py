"""The partner API's errors: JSON ``{"errors": [{"field", "problem"}]}`` with a status."""

from __future__ import annotations

import json

from aiohttp import web


class ApiError(web.HTTPException):
    """An answer naming the field (parameter, header, body key) and what is wrong with it."""

    def __init__(self, status: int, field: str, problem: str, *, headers: dict[str, str] | None = None):
        self.status_code = status
        super().__init__(headers=headers, text=json.dumps({"errors": [{"field": field, "problem": problem}]}),
                         content_type="application/json")
        self.field, self.problem = field, problem


def of_value_error(exc: ValueError, default_field: str) -> ApiError:
    """A 422 from a ValueError whose message is ``field: problem`` (the project's convention)."""
    text = str(exc)
    field, sep, problem = text.partition(": ")
    if not sep or " " in field:
        field, problem = default_field, text
    return ApiError(422, field, problem)
