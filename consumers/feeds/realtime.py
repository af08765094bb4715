"""Real-time pull: long polls of ``/changes.*`` and a Server-Sent Events stream of the same changes.

* ``GET /changes.{json,newsml}?since=<cursor>&wait=<seconds>`` (``wait`` 0-30, default 0)
  answers at once when there are changes after the cursor; otherwise it holds the request until
  the first change the client may see becomes durable (and answers it then) or ``wait`` seconds
  pass (and answers an empty page, as without ``wait``). Every answer says whether more changes
  are waiting after it (``X-More-Changes: true|false``, and ``"more"`` in ninjs), so a client
  knows it is caught up without asking again. ``fields=id,version`` (any of :data:`FIELDS`) makes
  ``/changes.json`` send ids and versions only: the client fetches the bodies it needs from
  ``/items/{id}``.
* ``GET /changes.sse?since=<cursor>`` is an ``text/event-stream`` of the same changes, one event
  per item (``event: change``, ``data:`` the ninjs item, or the ``fields=`` object), whose ``id:`` is
  the item's cursor value. A client that reconnects sends the last id it had as ``Last-Event-ID``
  (browsers' ``EventSource`` does) and the stream goes on after it: nothing in between is lost.
  A comment (``: heartbeat``) every :data:`HEARTBEAT_S` seconds without changes keeps proxies
  and load balancers from closing an idle stream.

The consumer thread makes changes durable; :class:`ChangeSignal` carries that into the server's
event loop, where every waiting request and stream re-reads the view (each for its own audience:
a change it may not see does not answer a long poll).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from aiohttp import web

from newswire import logs
from newswire.formats import ninjs
from newswire.params import ParamError

from .view import Audience, Entry, FeedView

log = logs.get(__name__)

#: the longest ``wait=`` a long poll may ask for, in seconds
MAX_WAIT_S = 30
#: seconds without a change after which a stream sends a heartbeat comment
HEARTBEAT_S = 15.0
#: what a client's ``EventSource`` waits before reconnecting, in milliseconds (the ``retry:`` field)
RETRY_MS = 2000
#: the fields ``fields=`` may name: the article id, its version, its event type, its cursor value
FIELDS = ("id", "version", "type", "cursor")

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


class ChangeSignal:
    """Wakes the coroutines of one event loop whenever the view's durable cursor moves.

    The view calls :meth:`_moved` in the thread that made its changes durable (the consumer's);
    the waiters are woken in the loop through ``call_soon_threadsafe``.
    """

    def __init__(self, view: FeedView):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self.closing = False
        view.on_durable(self._moved)

    async def start(self, _: web.Application | None = None) -> None:
        """Attach to the running loop (the application's ``on_startup``)."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()  # an asyncio.Event belongs to the first loop that waits on it
        self.closing = False

    async def close(self, _: web.Application | None = None) -> None:
        """Wake everyone for good (the application's ``on_shutdown``): long polls answer, streams end."""
        self.closing = True
        self._wake()

    def _moved(self, cursor: int) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed in the meantime: nobody is waiting any more
                pass

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, timeout: float) -> bool:
        """Until the next change (True) or ``timeout`` seconds (False)."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
            return True
        except TimeoutError:
            return False


@dataclass(frozen=True)
class Page:
    """Changes after a cursor: the entries, the cursor to ask from next, whether more are waiting."""

    entries: list[Entry]
    next: int
    more: bool


def parse_fields(raw: str | None) -> tuple[str, ...] | None:
    """``fields=id,version`` → ``("id", "version")``; ``None`` when absent; ParamError naming a bad one."""
    if raw is None:
        return None
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",")))
    for name in names:
        if name not in FIELDS:
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise ParamError(f"fields: {shown!r} is not one of {', '.join(FIELDS)}")
    return names


def compact(entry: Entry, fields: tuple[str, ...]) -> dict[str, object]:
    """The ``fields=`` form of one change."""
    values = {"id": entry.article_id, "version": entry.version, "type": entry.event_type, "cursor": entry.seq}
    return {name: values[name] for name in fields}


class Realtime:
    """Long polls and event streams over ``view`` (see the module doc)."""

    def __init__(self, view: FeedView, signal: ChangeSignal, *,
                 render: Callable[[list[Entry]], list[bytes]], heartbeat_s: float = HEARTBEAT_S):
        self.view = view
        self.signal = signal
        #: the kept ninjs bytes of entries' events, one that cannot be rendered left out
        self.render = render
        self.heartbeat_s = heartbeat_s
        #: long polls held now, and event streams open now
        self.waiting = 0
        self.streams = 0

    def page(self, since: int, *, limit: int, audience: Audience) -> Page:
        """The changes after ``since`` (ValueError for a cursor the view never handed out)."""
        entries, next_cursor = self.view.changes_since(since, limit=limit, audience=audience)
        more = len(entries) == limit and bool(self.view.changes_since(next_cursor, limit=1, audience=audience)[0])
        return Page(entries, next_cursor, more)

    async def changes(self, since: int, *, limit: int, audience: Audience, wait_s: float) -> Page:
        """:meth:`page`, held up to ``wait_s`` seconds until it holds something."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            page = self.page(since, limit=limit, audience=audience)
            remaining = deadline - loop.time()
            if page.entries or remaining <= 0 or self.signal.closing:
                return page
            self.waiting += 1
            try:
                await self.signal.wait(remaining)
            finally:
                self.waiting -= 1

    def body(self, since: int, page: Page, fields: tuple[str, ...]) -> bytes:
        """The ``fields=`` answer of a page: ``since``, ``next``, ``more`` and each item's ``fields``
        (a whole-item answer is assembled from the kept renders by the server)."""
        items = [compact(e, fields) for e in page.entries]
        return ninjs.dumps({"since": since, "next": page.next, "more": page.more, "items": items})

    def _events(self, entries: list[Entry], fields: tuple[str, ...] | None) -> bytes:
        out = []
        for entry in entries:
            data = ninjs.dumps(compact(entry, fields)) if fields is not None else next(iter(self.render([entry])), None)
            if data is not None:  # one that cannot be rendered is left out (and logged by the renderer)
                out.append(b"id: %d\nevent: change\ndata: %s\n\n" % (entry.seq, data))
        return b"".join(out)

    async def stream(self, request: web.Request, since: int, *, limit: int, audience: Audience,
                     fields: tuple[str, ...] | None) -> web.StreamResponse:
        """The event stream after ``since``, until the client goes or the server stops."""
        page = self.page(since, limit=limit, audience=audience)  # a bad cursor fails before the stream starts
        response = web.StreamResponse(headers={"Content-Type": SSE_CONTENT_TYPE, "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        log.info("feed_stream_opened", partner=audience.name, since=since)
        sent = 0
        self.streams += 1
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            while not self.signal.closing:
                if page.entries:
                    await response.write(self._events(page.entries, fields))
                    sent += len(page.entries)
                elif not await self.signal.wait(self.heartbeat_s):
                    await response.write(b": heartbeat\n\n")
                page = self.page(page.next, limit=limit, audience=audience)
        except ConnectionResetError:
            pass  # the client went away; it resumes with Last-Event-ID
        finally:
            self.streams -= 1
            log.info("feed_stream_closed", partner=audience.name, since=since, items=sent)
        return response
