"""The feed server's pages for people: ``/`` lists every feed with its links, and
``/feeds/{feed}.html`` shows a feed's stories as a page a browser reads.

The feeds themselves (``.rss``, ``.atom``, …) are not touched: no ``xml-stylesheet``
processing instruction, no content negotiation. A PI would change the bytes (and the ETag)
every reader gets and is ignored by most of them anyway; negotiating on ``Accept`` would hand
HTML to the readers and crawlers that send ``Accept: text/html`` or ``*/*`` (common) at the
URL they subscribed to, and make every cache vary on it. So the HTML view has its own URL, and
each page names the feeds with ``<link rel="alternate">``, which browsers and readers use to
discover the subscription.

The renderers (:func:`index_page`, :func:`feed_page`) are pure: data in, HTML out, through
Jinja2 templates with autoescaping (every value of a story is text, never markup).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import jinja2
from aiohttp import web

from newswire.codec import ArticleEvent
from newswire.formats import Story, render_each, utc_iso

from .conditional import Body, respond
from .view import FEED_NAME, PUBLIC, FeedView

if TYPE_CHECKING:
    from .server import Options

HTML = "text/html; charset=utf-8"
#: format → (label, MIME type) of the links to a feed
FEED_LINKS = {"rss": ("RSS", "application/rss+xml"), "atom": ("Atom", "application/atom+xml"),
              "newsml": ("NewsML-G2", "application/vnd.iptc.g2.newsmessage+xml"), "json": ("ninjs", "application/json")}
#: suffix → label of the links to one story
ITEM_LINKS = {"newsml": "NewsML-G2", "json": "ninjs", "rss": "RSS", "atom": "Atom"}

_templates = jinja2.Environment(loader=jinja2.PackageLoader("newswire.consumers.feeds", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                lstrip_blocks=True)


@dataclass(frozen=True)
class Link:
    label: str
    href: str
    type: str = ""


def _feed_links(base: str, feed: str) -> list[Link]:
    return [Link(label, f"{base}/feeds/{feed}.{fmt}", kind) for fmt, (label, kind) in FEED_LINKS.items()]


def _alternates(base: str, feed: str) -> list[dict]:
    return [{"type": link.type, "title": f"{feed} ({link.label})", "href": link.href}
            for link in _feed_links(base, feed)[:2]]


def index_page(feeds: Mapping[str, int], *, base: str, title: str) -> str:
    """The list of every feed (name → articles) with its links."""
    rows = [{"name": name, "articles": count, "html": f"{base}/feeds/{name}.html",
             "formats": _feed_links(base, name)} for name, count in feeds.items()]
    return _templates.get_template("index.html").render(
        title=title, feeds=rows, alternates=_alternates(base, "all") if "all" in feeds else [],
        changes=[Link(label, f"{base}/changes.{fmt}?since=0") for fmt, label in (("newsml", "NewsML-G2"),
                                                                                  ("json", "ninjs"))],
        index_json=f"{base}/feeds")


def _item(story: Story, base: str) -> dict:
    return {"headline": story.headline, "link": story.canonical_url, "language": story.language,
            "dir": "rtl" if story.rtl else "ltr", "published": utc_iso(story.occurred_at), "version": story.version,
            "bylines": story.byline, "dateline": story.dateline, "notice": story.notice, "summary": story.summary,
            "formats": [Link(label, f"{base}/items/{story.article_id}.{fmt}") for fmt, label in ITEM_LINKS.items()]}


def feed_page(feed: str, events: Iterable[ArticleEvent], *, base: str, title: str, updated: datetime | None,
              authority: str) -> str:
    """A feed's stories, newest first, as RSS shows them (a story that cannot be rendered is
    left out and logged, as in every feed)."""
    items = render_each(events, lambda story: _item(story, base), fmt="html", authority=authority)
    return _templates.get_template("feed.html").render(
        title=f"{title}: {feed}", items=items, formats=_feed_links(base, feed), home=f"{base}/",
        updated=utc_iso(updated) if updated else None, alternates=_alternates(base, feed))


class Pages:
    """The handlers, over the feed server's view, options (title, limit, max-age, id authority),
    clock and base URL of a request."""

    def __init__(self, view: FeedView, options: "Options", clock: Callable[[], datetime], base: Callable[[web.Request], str]):
        self.view, self.options, self.clock, self.base = view, options, clock, base

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_get("/feeds/{feed:[a-z0-9-]+}.html", self.feed)

    def _page(self, request: web.Request, html: str) -> web.Response:
        """An HTML answer with a strong ETag (304 to If-None-Match), no Last-Modified: an embargo
        that ends shows a story without the feed changing."""
        return respond(request, Body(html.encode(), HTML), last_modified=None, now=self.clock(),
                       cache_control=f"public, max-age={self.options.max_age}")

    async def index(self, request: web.Request) -> web.Response:
        return self._page(request, index_page(self.view.feeds(), base=self.base(request), title=self.options.title))

    async def feed(self, request: web.Request) -> web.Response:
        feed = request.match_info["feed"]
        changed = self.view.feed_changed(feed)
        if not FEED_NAME.fullmatch(feed) or changed is None:
            raise web.HTTPNotFound(text=f"no feed {feed!r}; / lists them")
        entries = self.view.items(feed, self.clock(), limit=self.options.limit, audience=PUBLIC, include_dead=False)
        return self._page(request, feed_page(feed, [e.event for e in entries], base=self.base(request),
                                             title=self.options.title, updated=changed,
                                             authority=self.options.authority))
