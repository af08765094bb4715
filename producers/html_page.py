"""The story inside a news site's HTML article page, as an article document (docs/article-json.md).

Extraction is trafilatura's (body paragraphs and page metadata: title, site name, date,
section, tags) plus newswire's own rules, applied in this order:

1. Site furniture is removed before anything is read: scripts and styles, navigation,
   the site header and footer, asides, forms (newsletter sign-ups), dialogs and pop-ups
   (``role=dialog``, ``aria-modal``), and elements whose class or id names donation appeals,
   newsletters, subscriptions, sharing, signatures, related stories, cookies or adverts
   (never ``article``/``main`` themselves or an element holding the ``article``).
2. Headline: the article's ``h1`` (else the page's first ``h1``, e.g. in an entry header
   outside the ``article``; a ``header`` holding an ``h1`` is not site furniture); else
   ``og:title``; else trafilatura's title.
3. Subheadline: an element of the article or of the headline's parent whose class names a
   subtitle/subhead/dek; else the ``h2`` right after the ``h1``; else none.
4. Lead image: the article's first ``figure`` with an ``img``: its URL (made absolute), size
   and alt text; its ``figcaption`` "caption (credit)" split into caption and credit (a
   separate element whose class names a credit wins); else ``og:image`` without caption.
5. Canonical URL: ``link rel=canonical``; else ``og:url``.
6. Body: trafilatura's paragraphs of the cleaned page, without the headline, subheadline and
   caption when they repeat there; if it finds nothing, the ``p`` elements of the article.
7. Language from ``<html lang>``; provider from ``og:site_name``; first publication and
   last change from ``article:published_time`` / ``article:modified_time``; category from
   ``article:section``; keywords from ``article:tag``; bylines from ``meta name=author``.

The result is a plain article document: :func:`newswire.producers.article.build_event`
validates and cleans it like any other, so a page is held to the same rules as the CMS.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import trafilatura
from lxml import html as lxml_html
from lxml.html import HtmlElement

from newswire.params import ParamError, parse_int

from .article import MAX_IMAGE_PIXELS

FURNITURE_TAGS = ("script", "style", "noscript", "template", "nav", "footer", "aside", "form", "iframe",
                  "button", "svg", "dialog")
FURNITURE_NAMES = re.compile(
    r"donat|newsletter|subscri|signup|sign-up|popup|pop-up|modal|share|sharing|social|signature|related|"
    r"recommend|promo|advert|\bads?\b|cookie|consent|paywall|breadcrumb|comment|widget|sidebar|personali[sz]e",
    re.IGNORECASE)
SUBTITLE_NAMES = re.compile(r"sub-?title|sub-?head|\bdek\b|standfirst|deck", re.IGNORECASE)
CREDIT_NAMES = re.compile(r"credit|copyright|photographer", re.IGNORECASE)
TRAILING_CREDIT = re.compile(r"^(?P<caption>.*\S)\s*\((?P<credit>[^()]+)\)\s*$", re.DOTALL)
ARTICLE_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")
DECLARED_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9._:-]+)""", re.IGNORECASE)


class PageError(ValueError):
    """The page holds no article newswire can extract; ``field`` names what is missing or wrong."""

    def __init__(self, problem: str, field: str = "$"):
        super().__init__(problem)
        self.field = field


def article_from_html(page: str | bytes, *, article_id: str | None = None,
                      base_url: str | None = None) -> dict[str, Any]:
    """The article document of an HTML article page (see the module doc for the rules)."""
    tree = lxml_html.document_fromstring(decode_page(page) if isinstance(page, bytes) else page)
    meta = _meta(tree)
    canonical = _first(tree.xpath('//link[@rel="canonical"]/@href')) or meta.get("og:url")
    base = canonical or base_url
    _remove_furniture(tree)
    article = next((found[0] for found in (tree.xpath("//article"), tree.xpath("//main")) if found), tree.body)

    metadata = trafilatura.extract_metadata(tree)
    h1 = _first(article.xpath(".//h1") or tree.xpath("//h1"))
    headline = _text(h1) or meta.get("og:title") or (metadata.title if metadata else None)
    subheadline = _subheadline(article, h1)
    image = _lead_image(article, base) or _og_image(meta, base)
    skip = {t for t in (headline, subheadline, image and image.get("caption")) if t}
    body = _body(tree, article, skip)

    document: dict[str, Any] = {
        "article_id": article_id or (article_id_from_url(canonical) if canonical else None),
        "headline": headline,
        "subheadline": subheadline,
        "language": tree.get("lang") or (metadata.language if metadata else None),
        "body": body,
        "canonical_url": _join(base_url, canonical) if canonical else None,
        "images": [image] if image else [],
        "provider": meta.get("og:site_name") or (metadata.sitename if metadata else None),
        "categories": [c for c in [meta.get("article:section")] if c],
        "keywords": list(dict.fromkeys(meta.get("article:tag[]", []))),
        "bylines": [{"name": name.strip(), "role": None} for name in re.split(r"[;,]| and ", meta.get("author", ""))
                    if name.strip()],
    }
    published, modified = meta.get("article:published_time"), meta.get("article:modified_time")
    if published:
        document["first_created"] = published
        document["occurred_at"] = modified or published
    if document["article_id"] is None:
        raise PageError("the page has no canonical URL to derive an article id from; give one", "article_id")
    return {k: v for k, v in document.items() if v not in (None, [], "")}


def decode_page(raw: bytes) -> str:
    """The text of a page: in the charset its ``<meta>`` declares, else UTF-8; strictly."""
    declared = DECLARED_CHARSET.search(raw[:4096])
    charset = declared.group(1).decode("ascii").lower() if declared else "utf-8"
    try:
        return raw.decode(charset).removeprefix("\ufeff")
    except LookupError:
        raise PageError(f"the page declares an unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise PageError(f"the page is not valid {charset}: byte 0x{raw[exc.start]:02x} at offset {exc.start}") from None


def article_id_from_url(url: str) -> str:
    """``<host>:<last path segment>`` of a canonical URL, e.g. ``themedialine.org:turkey-continues-…``.

    Characters outside ``[a-zA-Z0-9._-]`` become ``-``; an id longer than 128 characters is cut
    to 115 and ends with ``-`` and 12 hex digits of the URL's SHA-256, so it stays unique.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise PageError(f"the canonical URL is not a URL ({exc}): {url[:80]!r}", "canonical_url") from None
    segments = [s for s in parts.path.split("/") if s]
    slug = ARTICLE_ID_UNSAFE.sub("-", segments[-1] if segments else "").strip("-") or "index"
    if parts.query:
        slug += "-" + ARTICLE_ID_UNSAFE.sub("-", parts.query).strip("-")
    article_id = f"{(parts.hostname or 'page').removeprefix('www.')}:{slug}"
    if len(article_id) > 128:
        article_id = f"{article_id[:115]}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"
    return article_id


def _join(base: str | None, url: str) -> str:
    """``url`` made absolute against ``base``; as it is when either does not parse (build_event names it)."""
    try:
        return urljoin(base or "", url)
    except ValueError:
        return url


def _meta(tree: HtmlElement) -> dict[str, Any]:
    """``<meta property|name=… content=…>``, first value wins; ``article:tag`` collected as a list."""
    found: dict[str, Any] = {"article:tag[]": []}
    for element in tree.xpath("//meta[@content]"):
        name = element.get("property") or element.get("name")
        if not name:
            continue
        if name == "article:tag":
            found["article:tag[]"].append(element.get("content").strip())
        found.setdefault(name, element.get("content").strip())
    return found


def _remove_furniture(tree: HtmlElement) -> None:
    for element in list(tree.iter(*FURNITURE_TAGS)):
        _drop(element)
    for element in list(tree.iter()):
        if (not isinstance(element.tag, str) or element.getparent() is None
                or element.tag in ("html", "body", "main", "article") or element.find(".//article") is not None):
            continue  # a class like "has-related-posts" on the story's own container must not drop it
        names = f"{element.get('class', '')} {element.get('id', '')}"
        if (element.get("role") in ("dialog", "alertdialog", "navigation", "banner", "contentinfo", "complementary")
                or element.get("aria-modal") == "true"
                or (element.tag == "header" and not element.xpath("ancestor::article")
                    and element.find(".//h1") is None)
                or FURNITURE_NAMES.search(names)):
            _drop(element)


def _drop(element: HtmlElement) -> None:
    if element.getparent() is not None:
        element.drop_tree()


def _first(items: list) -> Any:
    return items[0] if items else None


def _text(element: HtmlElement | None) -> str | None:
    if element is None:
        return None
    text = " ".join(element.text_content().split())
    return text or None


def _subheadline(article: HtmlElement, h1: HtmlElement | None) -> str | None:
    scopes = [article] + ([h1.getparent()] if h1 is not None and h1.getparent() is not None else [])
    named = [e for scope in scopes for e in scope.iter() if isinstance(e.tag, str) and e is not h1
             and SUBTITLE_NAMES.search(f"{e.get('class', '')} {e.get('id', '')}")]
    if named:
        return _text(named[0])
    if h1 is not None:
        following = h1.getnext()
        if following is not None and following.tag == "h2":
            return _text(following)
    return None


def _lead_image(article: HtmlElement, base: str | None) -> dict[str, Any] | None:
    figure = _first([f for f in article.iter("figure") if f.find(".//img") is not None])
    if figure is None:
        return None
    img = figure.find(".//img")
    src = img.get("src") or img.get("data-src")
    if not src:
        return None
    image: dict[str, Any] = {"url": _join(base, src.strip())}
    image.update(_dimensions(img.get))
    if img.get("alt", "").strip():
        image["alt_text"] = img.get("alt").strip()
    caption_element = figure.find(".//figcaption")
    if caption_element is not None:
        credit_element = _first([e for e in caption_element.iter() if e is not caption_element
                                 and CREDIT_NAMES.search(e.get("class", ""))])
        credit = _text(credit_element)
        if credit_element is not None:
            credit_element.drop_tree()
        caption = _text(caption_element)
        if caption and credit is None:
            match = TRAILING_CREDIT.match(caption)
            if match:
                caption, credit = match["caption"], match["credit"].strip()
        if caption:
            image["caption"] = caption
        if credit:
            image["credit"] = credit
    return image


def _og_image(meta: dict[str, Any], base: str | None) -> dict[str, Any] | None:
    if not meta.get("og:image"):
        return None
    image: dict[str, Any] = {"url": _join(base, meta["og:image"])}
    image.update(_dimensions(lambda dimension: meta.get(f"og:image:{dimension}")))
    return image


def _dimensions(attribute: Callable[[str], str | None]) -> dict[str, int]:
    """``width`` and ``height`` where ``attribute`` gives them as whole pixels (anything else is left out)."""
    found = {}
    for dimension in ("width", "height"):
        try:
            found[dimension] = parse_int((attribute(dimension) or "").strip(), dimension, low=1, high=MAX_IMAGE_PIXELS)
        except ParamError:
            pass  # "²", "100%", "auto": not a size the event can carry
    return found


def _body(tree: HtmlElement, article: HtmlElement, skip: set[str]) -> str:
    extracted = trafilatura.extract(lxml_html.tostring(tree, encoding="unicode"), output_format="html",
                                    include_formatting=True, include_links=True, include_images=False,
                                    include_tables=True, include_comments=False, favor_precision=True)
    if extracted:
        blocks = list(lxml_html.document_fromstring(extracted).body)
    else:
        blocks = article.xpath(".//p")
    kept = [block for block in blocks if _text(block) and _text(block) not in skip]
    return "".join(lxml_html.tostring(block, encoding="unicode", with_tail=False) for block in kept)
