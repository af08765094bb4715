"""Drop-folder partners: deliveries written as files in a directory instead of POSTed.

A partner registered with a ``file:///absolute/dir`` endpoint gets each delivery as the file
``<dir>/<seq, 10 digits>_<article_id>_v<version>.<xml|json|rss.xml>`` holding the very bytes
an HTTP push would carry (the ninjs envelope, the NewsML-G2 ``newsMessage`` with its
``transmitId``, the RSS ``<item>``), the way wire clients pick stories up by FTP/SFTP. The
number comes first, so a directory listing sorts in transmission order.

It goes through the same outbox, per-partner worker, order, sequence numbers, receipts and
retries as an HTTP push: a written file is ``delivered`` (receipt status code none), an
OSError (directory missing, no permission, disk full) a ``retry``, and so on to the dead
letters. Files are written atomically (:func:`newswire.files.write_atomically`); the
directory is never created (a missing one is the partner's misconfiguration, retried until
it is there). There are no HTTP headers, so no signature: who may write and read the folder
is the filesystem's access control. The SSRF guard does not apply; only absolute local paths
are accepted.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from newswire.consumers.webhooks.delivery import Response
from newswire.events import ARTICLE_ID
from newswire.files import remove_temp_files, write_atomically
from newswire.formats import registry as formats

SCHEME = "file"
SEQ_DIGITS = 10


def directory(url: str) -> Path:
    """The directory of a ``file:///absolute/dir`` endpoint; ValueError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"url: not a file: URL: {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"url: a drop folder must be on this machine (file:///dir or file://localhost/dir),"
                         f" not on host {parts.netloc!r} in {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"url: a drop folder URL takes no query or fragment: {url!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"url: a drop folder must be an absolute path (file:///srv/wire/acme), got {url!r}")
    if "\0" in path or any(part == ".." for part in path.split("/")):
        raise ValueError(f"url: a drop folder path may not contain '..' or NUL: {url!r}")
    return Path(path)


def file_name(seq: int, article_id: str, version: int, fmt: str) -> str:
    """``<seq, zero-padded to 10 digits>_<article_id>_v<version>.<extension of format fmt>``."""
    return _file_name(seq, article_id, version, formats.get(fmt).extension)


def _file_name(seq: int, article_id: str, version: int, extension: str) -> str:
    if not ARTICLE_ID.fullmatch(article_id):
        raise ValueError(f"article_id: {article_id!r} cannot be a file name")
    return f"{seq:0{SEQ_DIGITS}d}_{article_id}_v{version}.{extension}"


async def deliver(url: str, content_type: str, *, seq: int, article_id: str, version: int,
                  payload: bytes) -> Response:
    """Write one delivery's file, named for its ``content_type`` (the format it was rendered in);
    never raises for what the filesystem does (OSError → error)."""
    started = time.perf_counter()
    try:
        path = directory(url) / _file_name(seq, article_id, version, formats.push_extension(content_type))
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(write_atomically, path, payload, create_dirs=False))
        return Response(None, (time.perf_counter() - started) * 1000)
    except (OSError, ValueError) as exc:
        return Response(None, (time.perf_counter() - started) * 1000, f"cannot write the file: {exc}")


def remove_leftovers(url: str) -> list[Path]:
    """Temporary files a crashed pusher left in the partner's folder (removed); none if it is missing."""
    try:
        return remove_temp_files(directory(url), recursive=False)
    except OSError:
        return []
