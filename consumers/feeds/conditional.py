"""HTTP validators and compression for the feed server: ETag, Last-Modified, 304, gzip.

* The ETag is strong: the SHA-256 of the uncompressed body (a gzip body gets ``-gzip``
  appended, since its bytes differ; ``If-None-Match`` accepts either form).
* ``Last-Modified`` has whole seconds; it is only sent once the second of the last change is
  over, so a change later in the same second can never be hidden behind a 304.
* ``If-None-Match`` takes precedence over ``If-Modified-Since`` (RFC 9110, 13.2.2).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime

from aiohttp import web

from newswire import httpdate

GZIP_MIN_BYTES = 512


@dataclass
class Body:
    """A rendered body with its validator; the gzip form is made once, when first asked for."""

    data: bytes
    content_type: str
    etag: str = field(init=False)
    _gzip: bytes | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.etag = hashlib.sha256(self.data).hexdigest()[:40]

    @property
    def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzip.compress(self.data, compresslevel=6, mtime=0)
        return self._gzip


def accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return False
    return False


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/").strip('"')
        if tag.removesuffix("-gzip") == etag:
            return True
    return False


def _validator_time(last_modified: datetime | None, now: datetime) -> datetime | None:
    """``last_modified`` to the second, once that second is over (else no usable validator)."""
    if last_modified is None:
        return None
    whole = last_modified.astimezone(timezone.utc).replace(microsecond=0)
    return whole if now.astimezone(timezone.utc).replace(microsecond=0) > whole else None


def not_modified(request: web.Request, body: Body, last_modified: datetime | None, now: datetime) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        return _etag_matches(if_none_match, body.etag)
    since = request.headers.get("If-Modified-Since")
    validator = _validator_time(last_modified, now)
    if since is None or validator is None:
        return False
    since_time = httpdate.parse(since)
    return since_time is not None and validator <= since_time


def respond(request: web.Request, body: Body, *, last_modified: datetime | None, now: datetime,
            cache_control: str, headers: dict[str, str] | None = None) -> web.Response:
    """A 200 (gzip when accepted) or a 304, with validators and cache headers."""
    use_gzip = accepts_gzip(request) and len(body.data) >= GZIP_MIN_BYTES
    out = {"Cache-Control": cache_control, "Vary": "Accept-Encoding, Authorization",
           "ETag": f'"{body.etag}-gzip"' if use_gzip else f'"{body.etag}"', **(headers or {})}
    validator = _validator_time(last_modified, now)
    if validator is not None:
        out["Last-Modified"] = format_datetime(validator, usegmt=True)
    if not_modified(request, body, last_modified, now):
        return web.Response(status=304, headers=out)
    if use_gzip:
        out["Content-Encoding"] = "gzip"
        return _response(body.gzipped, body.content_type, out)
    return _response(body.data, body.content_type, out)


def _response(data: bytes, content_type: str, headers: dict[str, str]) -> web.Response:
    response = web.Response(body=data, headers=headers)
    response.headers["Content-Type"] = content_type
    return response
