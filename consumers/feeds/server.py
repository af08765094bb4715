"""The feed server (aiohttp): feeds, single items and the wire-ingest change cursor.

Routes (``{fmt}`` of a feed: ``rss``, ``atom``, ``newsml`` (a newsMessage), ``json`` (ninjs 3.1),
``ninjs2`` (ninjs 2.2)):

* ``GET /feeds/{feed}.{fmt}`` — the newest items of ``all``, ``category-<name>``, ``lang-<tag>``
  (``?limit=``, default 50, at most 500). RSS and Atom leave out embargoed items and carry
  kills and withdrawals as what each can say (Atom: an RFC 6721 ``at:deleted-entry``; RSS: the
  item with its notice and nothing of the story); NewsML-G2 and ninjs carry kills
  (``stat:canceled``) and withdrawals (``stat:withheld``), and, for a partner entitled to them,
  embargoed items (marked embargoed).
* ``GET /items/{article_id}`` with ``?format=newsml|ninjs|ninjs2|rss|atom`` (default newsml), or
  ``/items/{article_id}.newsml`` (``.json``/``.ninjs``, ``.ninjs2``, ``.rss``, ``.atom``); ``?version=N``
  answers an earlier version from the stored view (every version is kept) unless the story
  was killed or withdrawn since, which answers 410.
* ``GET /changes.newsml?since=<cursor>&limit=`` and ``/changes.json?…`` (``.ninjs2``) — the items changed
  after a cursor, in change order; the next cursor is in the ``X-Next-Cursor`` header and
  in the body (ninjs: ``"next"``; NewsML-G2: the newsMessage's ``transmitId``,
  ``changes-<since>-<next>``). NewsML-G2 answers 204 when there is nothing to send, since a
  newsMessage must hold at least one item (the same for a feed with nothing to show).
  ``?wait=`` (0-30 s) long-polls, ``X-More-Changes`` says whether more are waiting,
  ``fields=id,version`` sends ids and versions only, and ``/changes.sse`` streams the same
  changes as Server-Sent Events (:mod:`.realtime`).
* ``POST /websub``: the WebSub hub of the public feeds, which advertise it (:mod:`.websub`).
* An item that cannot be rendered is left out of a feed or change list, with the reason
  logged (``item_left_out``): one bad event never takes a feed down for everyone (the
  consumer sends such events to the dead letters in the first place). A newsMessage none
  of whose items can be rendered answers 204, as an empty one.
* The same under ``/partners/{partner}/…`` with the partner's token (``Authorization: Bearer``,
  ``X-Newswire-Token`` or ``?token=``); a token on the public routes works too.
* ``GET /feeds`` lists the feeds; ``GET /health`` says whether the consumer runs.
* For people (:mod:`.pages`): ``GET /`` lists every feed with its links, ``GET /feeds/{feed}.html``
  shows a feed as a page; the feeds' own bytes stay as feed readers get them.

Every answer has a strong ETag and (when it has a change time) Last-Modified, answers
conditional requests with 304, is gzipped when the client accepts it, and carries
Cache-Control (public feeds: a short max-age; partner answers: private).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from aiohttp import web

from newswire import logs
from newswire.codec import ArticleEvent
from newswire.consumers.webhooks.config import Network
from newswire.events import MAX_VERSION, is_embargoed
from newswire.formats import EXAMPLE_AUTHORITY, utc_iso
from newswire.formats import registry as formats
from newswire.formats.kept import Renders, Source
from newswire.formats.registry import Channel, Format
from newswire.params import ParamError, parse_int

from . import realtime, websub
from .access import Tokens
from .conditional import Body, respond
from .consumer import FeedsConsumer, utc_now
from .pages import Pages
from .store import ViewStore
from .view import FEED_NAME, PUBLIC, Audience, Entry, FeedView

log = logs.get(__name__)

_NAMES = "|".join(sorted(formats.BY_NAME, key=lambda n: (-len(n), n)))
_ITEM_SUFFIX = re.compile(rf"(.+)\.({_NAMES})")
_ARTICLE = "[A-Za-z0-9._:-]+"
_FEED = f"{{feed:[a-z0-9-]+}}.{{fmt:{_NAMES}}}"
#: the change cursor speaks the wire formats (those that carry kills and embargoes)
_WIRE_NAMES = "|".join(n for n, f in formats.BY_NAME.items() if not f.public)
_CACHE_SIZE = 512
#: the most bytes of rendered bodies kept (a page of 500 items is megabytes)
_CACHE_BYTES = 32 * 2**20
#: the largest change cursor (a SQLite integer)
MAX_CURSOR = 2**63 - 1

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Options:
    title: str = "newswire"
    #: scheme://host of the links in feeds; by default the request's own
    base_url: str | None = None
    limit: int = 50
    max_limit: int = 500
    #: max-age of public answers, in seconds
    max_age: int = 15
    #: the domain that mints the item ids (``newswire feeds serve`` passes the installation's)
    authority: str = EXAMPLE_AUTHORITY
    #: seconds without a change after which an event stream sends a heartbeat comment
    heartbeat_s: float = realtime.HEARTBEAT_S
    #: networks WebSub callbacks may be on besides public addresses (NEWSWIRE_WEBSUB_ALLOW_CIDRS)
    websub_allow: tuple[Network, ...] = ()


def _error(status: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json", headers=headers or None)


def _integer(request: web.Request, name: str, default: int, low: int, high: int, raw: str | None = None) -> int:
    """The integer query parameter ``name`` (or ``raw``; ``default`` when absent); 400 naming it otherwise."""
    raw = request.query.get(name) if raw is None else raw
    try:
        return default if raw is None else parse_int(raw, name, low=low, high=high)
    except ParamError as exc:
        raise _error(web.HTTPBadRequest, str(exc)) from None


def _content_type(media_type: str) -> str:
    return f"{media_type}; charset=utf-8"


def _sources(entries: Sequence[Entry]) -> list[Source]:
    """The entries as the kept renders take them: an entry's event is only decoded (and read
    from the store) when its bytes are not kept."""
    return [(entry.event_id, lambda entry=entry: entry.event) for entry in entries]


def last_modified(changed: datetime | None, entries: Sequence[Entry], now: datetime) -> datetime | None:
    """When what ``entries`` show last changed: ``changed``, or an embargo that has ended since."""
    ends = [e.embargo_until for e in entries if e.embargo_until is not None and e.embargo_until <= now]
    return max([m for m in (changed, *ends) if m is not None], default=None)


class FeedServer:
    """The aiohttp application over a :class:`FeedView` (see module doc)."""

    def __init__(self, view: FeedView, *, store: ViewStore | None = None, tokens: Tokens | None = None,
                 clock: Clock = utc_now, consumer: FeedsConsumer | None = None, options: Options = Options(),
                 renders: Renders | None = None):
        """``renders``: the kept bytes of the items (shared with the consumer, which keeps what it
        renders on the way in); by default the server's own, with ``options.authority``."""
        self.view = view
        self.renders = renders or Renders(options.authority)
        if self.renders.authority != options.authority:
            raise ValueError(f"renders: minted by {self.renders.authority!r}, not by the server's {options.authority!r}")
        self.store = store
        self.tokens = tokens or Tokens()
        self.clock = clock
        self.consumer = consumer
        self.options = options
        self._cache: OrderedDict[tuple, Body] = OrderedDict()
        self._cache_bytes = 0
        ninjs_format = formats.get("ninjs")
        self.signal = realtime.ChangeSignal(view)
        self.realtime = realtime.Realtime(view, self.signal, heartbeat_s=options.heartbeat_s,
                                          render=lambda entries: self.renders.fragments(_sources(entries), ninjs_format))
        self.hub = None if store is None else websub.Hub(
            view, self.signal, websub.SubscriptionStore(store.path.with_name("websub.sqlite3")), self.public_feed,
            clock=clock, base_url=options.base_url, allow=options.websub_allow)

    def app(self) -> web.Application:
        app = web.Application()
        for prefix in ("", "/partners/{partner:[a-z0-9][a-z0-9_-]*}"):
            app.router.add_get(f"{prefix}/feeds/{_FEED}", self.feed)
            app.router.add_get(f"{prefix}/items/{{name:{_ARTICLE}}}", self.item)
            app.router.add_get(prefix + f"/changes.{{fmt:{_WIRE_NAMES}}}", self.changes)
            app.router.add_get(prefix + "/changes.sse", self.stream)
        app.router.add_get("/feeds", self.index)
        app.router.add_get("/health", self.health)
        app.on_startup.append(self.signal.start)
        app.on_shutdown.append(self.signal.close)
        if self.hub is not None:
            app.router.add_post(websub.PATH, self.hub.subscribe)
            app.on_startup.append(self.hub.start)
            app.on_cleanup.append(self.hub.stop)
        Pages(self.view, self.options, self.clock, self._base).add_routes(app)  # / and /feeds/{feed}.html
        return app

    # --- who asks -------------------------------------------------------------------------

    def audience(self, request: web.Request) -> Audience:
        partner = request.match_info.get("partner")
        auth = request.headers.get("Authorization", "")
        token = (auth[7:].strip() if auth[:7].lower() == "bearer " else None) \
            or request.headers.get("X-Newswire-Token") or request.query.get("token")
        if partner is None and not token:
            return PUBLIC
        audience = self.tokens.audience(token, partner) if token else None
        if audience is None:
            log.warning("feed_token_refused", partner=partner, path=request.path)
            raise _error(web.HTTPUnauthorized, "a valid partner token is needed",
                         **{"WWW-Authenticate": 'Bearer realm="newswire feeds"'})
        return audience

    def _limit(self, request: web.Request) -> int:
        return _integer(request, "limit", self.options.limit, 1, self.options.max_limit)

    def _base(self, request: web.Request) -> str:
        return self.options.base_url or f"{request.scheme}://{request.host}"

    def _cache_control(self, audience: Audience) -> str:
        return "private, no-cache" if audience is not PUBLIC else f"public, max-age={self.options.max_age}"

    def _body(self, key: tuple, media_type: str, render: Callable[[], bytes]) -> Body:
        body = self._cache.get(key)
        if body is None:
            body = self._cache[key] = Body(render(), _content_type(media_type))
            self._cache_bytes += len(body.data)
            while len(self._cache) > 1 and (len(self._cache) > _CACHE_SIZE or self._cache_bytes > _CACHE_BYTES):
                self._cache_bytes -= len(self._cache.popitem(last=False)[1].data)
        else:
            self._cache.move_to_end(key)
        return body

    # --- handlers -------------------------------------------------------------------------

    async def feed(self, request: web.Request) -> web.Response:
        audience = self.audience(request)
        feed, fmt = request.match_info["feed"], formats.get(request.match_info["fmt"])
        if not FEED_NAME.fullmatch(feed) or self.view.feed_changed(feed) is None:
            raise _error(web.HTTPNotFound, f"no feed {feed!r}; GET /feeds lists them")
        if not audience.may_read(feed):
            raise _error(web.HTTPForbidden, f"partner {audience.name!r} is not entitled to feed {feed!r}")
        now, limit, wire = self.clock(), self._limit(request), not fmt.public
        entries = self.view.items(feed, now, limit=limit, audience=audience if wire else PUBLIC)
        if fmt.assembly.needs_items and not entries:  # a newsMessage must hold at least one item
            return web.Response(status=204, headers={"Cache-Control": self._cache_control(audience)})
        updated = last_modified(self.view.feed_changed(feed), entries, now) or now
        base = self._base(request)
        self_url = base + request.path
        hub = base + websub.PATH if self.hub is not None and audience is PUBLIC else None
        key = ("feed", self_url, fmt.name, updated, hub, tuple((e.article_id, e.version) for e in entries))
        try:
            body = self._body(key, fmt.feed_media_type,
                              lambda: self.renders.assemble(_sources(entries), fmt,
                                                            self._channel(feed, self_url, base, updated, hub)))
        except ValueError as exc:  # a newsMessage none of whose items could be rendered (each logged)
            log.error("feed_not_rendered", feed=feed, format=fmt.name, partner=audience.name, reason=str(exc))
            return web.Response(status=204, headers={"Cache-Control": self._cache_control(audience)})
        held = sum(e.embargoed(now) for e in entries)
        headers = {"X-Embargoed-Items": str(held)} if held else {}
        if hub is not None:
            headers["Link"] = websub.link_header(hub, self_url)
        return respond(request, body, last_modified=updated, now=now, cache_control=self._cache_control(audience),
                       headers=headers)

    def public_feed(self, feed: str, fmt_name: str, base: str) -> Body | None:
        """What ``GET {base}/feeds/{feed}.{fmt_name}`` answers the public now (the WebSub hub's
        content), or None when that is no document (an empty newsMessage, nothing renderable)."""
        now, fmt = self.clock(), formats.get(fmt_name)
        entries = self.view.items(feed, now, limit=self.options.limit)
        if fmt.assembly.needs_items and not entries:
            return None
        updated = last_modified(self.view.feed_changed(feed), entries, now) or now
        self_url = f"{base}/feeds/{feed}.{fmt.url_name}"
        try:
            data = self.renders.assemble(_sources(entries), fmt,
                                         self._channel(feed, self_url, base, updated, base + websub.PATH))
        except ValueError as exc:
            log.error("feed_not_rendered", feed=feed, format=fmt.name, partner=PUBLIC.name, reason=str(exc))
            return None
        return Body(data, _content_type(fmt.feed_media_type))

    def _channel(self, feed: str, self_url: str, base: str, updated: datetime, hub: str | None = None) -> Channel:
        """What the feed ``feed`` (or the one-item feed of an article) says about itself."""
        return Channel(updated=updated, title=f"{self.options.title}: {feed}", link=base + "/",
                       self_url=self_url, feed_id=f"{base}/feeds/{feed}",
                       description=f"The newest stories of the {feed} feed", hub=hub,
                       head=formats.ninjs_head(feed=feed, updated=updated))

    async def item(self, request: web.Request) -> web.Response:
        audience = self.audience(request)
        now = self.clock()
        name = request.match_info["name"]
        article_id, asked = name, request.query.get("format", "newsml")
        suffixed = _ITEM_SUFFIX.fullmatch(name)
        if suffixed and self.view.get(name) is None:
            article_id, asked = suffixed.groups()
        try:
            fmt = formats.get(asked)
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None
        entry = self.view.get(article_id)
        if entry is None or not audience.may_see(entry) or (entry.embargoed(now) and not audience.embargoed):
            raise _error(web.HTTPNotFound, f"no article {article_id!r}")
        event = self._version(entry, request, now)
        if fmt.public:
            if entry.dead:
                raise _error(web.HTTPGone, f"article {article_id!r} was {entry.event_type}: "
                                           "RSS and Atom no longer carry it; NewsML-G2 and ninjs say why")
            if entry.embargoed(now):
                raise _error(web.HTTPNotFound, f"article {article_id!r} is embargoed: only NewsML-G2 and ninjs carry it")
        self_url = self._base(request) + request.path
        updated = last_modified(entry.changed_at, [entry], now) or now
        key = ("item", self_url, fmt.name, article_id, event["version"], updated)
        body = self._body(key, fmt.feed_media_type if fmt.public else fmt.media_type,
                          lambda: self._render_item(fmt, event, self_url, request, updated))
        headers = {"X-Article-Version": str(event["version"])}
        if entry.embargoed(now):
            headers["X-Embargoed-Until"] = utc_iso(entry.embargo_until)
        latest = event["version"] == entry.version
        return respond(request, body, last_modified=updated if latest else None, now=now,
                       cache_control=self._cache_control(audience), headers=headers)

    def _version(self, entry: Entry, request: web.Request, now: datetime) -> ArticleEvent:
        asked = _integer(request, "version", entry.version, 1, MAX_VERSION)
        if asked == entry.version:
            return entry.event
        if asked > entry.version:
            raise _error(web.HTTPNotFound, f"article {entry.article_id!r} has no version {asked} (latest {entry.version})")
        if entry.dead:
            raise _error(web.HTTPGone, f"article {entry.article_id!r} was {entry.event_type}: "
                                       "its earlier versions must not be used")
        event = self.store.version(entry.article_id, asked) if self.store is not None else None
        if event is None or is_embargoed(event, now):
            raise _error(web.HTTPNotFound, f"version {asked} of article {entry.article_id!r} is not kept here")
        return event

    def _render_item(self, fmt: Format, event: ArticleEvent, self_url: str, request: web.Request,
                     updated: datetime) -> bytes:
        """A wire format's item; for RSS and Atom a feed of the one item."""
        if fmt.public:
            return self.renders.feed([event], fmt, self._channel(event["article_id"], self_url, self._base(request),
                                                                 updated))
        return self.renders.item(event, fmt)

    async def changes(self, request: web.Request) -> web.Response:
        audience = self.audience(request)
        fmt = formats.get(request.match_info["fmt"])
        since, limit = _integer(request, "since", 0, 0, MAX_CURSOR), self._limit(request)
        wait, fields = _integer(request, "wait", 0, 0, realtime.MAX_WAIT_S), self._fields(request)
        if fields is not None and fmt.push != "envelope":
            raise _error(web.HTTPBadRequest, "fields: only the ninjs changes (.json, .ninjs2) and /changes.sse take fields=")
        try:
            page = await self.realtime.changes(since, limit=limit, audience=audience, wait_s=wait)
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None
        entries, next_cursor = page.entries, page.next
        headers = {"X-Next-Cursor": str(next_cursor), "X-Item-Count": str(len(entries)),
                   "X-More-Changes": "true" if page.more else "false"}
        cache_control = "private, no-cache" if audience is not PUBLIC else "no-cache"
        data = None
        channel = Channel(updated=self.clock(), transmit_id=f"changes-{since}-{next_cursor}",
                          head={"since": since, "next": next_cursor, "more": page.more})
        if fields is not None:
            data = self.realtime.body(since, page, fields)
        elif entries or not fmt.assembly.needs_items:  # a newsMessage must hold at least one item
            try:
                data = self.renders.assemble(_sources(entries), fmt, channel)
            except ValueError as exc:  # none of them could be rendered (each is logged)
                log.error("feed_changes_not_rendered", partner=audience.name, since=since, reason=str(exc))
        if data is None:
            return web.Response(status=204, headers={**headers, "Cache-Control": cache_control})
        log.info("feed_changes_served", partner=audience.name, since=since, next=next_cursor, items=len(entries))
        return respond(request, Body(data, _content_type(fmt.feed_media_type)), last_modified=None, now=self.clock(),
                       cache_control=cache_control, headers=headers)

    def _fields(self, request: web.Request) -> tuple[str, ...] | None:
        try:
            return realtime.parse_fields(request.query.get("fields"))
        except ParamError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """``/changes.sse``: the changes after ``Last-Event-ID`` (a reconnection) or ``since=``."""
        audience = self.audience(request)
        resumed = request.headers.get("Last-Event-ID")
        since = _integer(request, "Last-Event-ID" if resumed is not None else "since", 0, 0, MAX_CURSOR,
                         raw=resumed.strip() if resumed is not None else None)
        try:
            return await self.realtime.stream(request, since, limit=self._limit(request), audience=audience,
                                              fields=self._fields(request))
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from None

    async def index(self, request: web.Request) -> web.Response:
        base = self._base(request)
        suffixes = [f.url_name for f in formats.FORMATS.values()]
        feeds = {name: {suffix: f"{base}/feeds/{name}.{suffix}" for suffix in suffixes}
                 | {"articles": count} for name, count in self.view.feeds().items()}
        return web.json_response({"feeds": feeds, "changes": {
            f.url_name: f"{base}/changes.{f.url_name}?since=0" for f in formats.FORMATS.values() if not f.public}})

    async def health(self, request: web.Request) -> web.Response:
        failed = self.consumer is not None and not self.consumer.alive
        body = {"articles": len(self.view), "in_memory": self.view.in_memory(), "cursor": self.view.durable,
                "stale_events": self.view.stale,
                "consumer": "none" if self.consumer is None else ("stopped" if failed else "running")}
        return web.json_response(body, status=503 if failed else 200)
