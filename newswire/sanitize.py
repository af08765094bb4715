"""Cleaning of incoming text and HTML, shared by the producers (before anything reaches
Kafka) and the renderers (which never trust an event read from the topic).

The documented cleaning, and nothing more:

* plain-text fields: characters illegal in XML 1.0 (C0 controls other than tab, newline and
  carriage return; U+FFFE, U+FFFF; lone surrogates) are removed, and so are the C1 controls
  U+0080–U+009F (mojibake of Windows-1252 text, invisible, "discouraged" by XML 1.0), but NEL
  U+0085, a line break, which becomes a line feed, the replacement character U+FFFD (what is left of a character an
  earlier decoder could not read: it says nothing to a reader), the byte-order
  mark U+FEFF and the bidirectional embedding/override controls U+202A–U+202E, which can
  reorder the text that follows them in a reader (right-to-left marks U+200E/U+200F/U+061C,
  the isolates U+2066–U+2069 and zero-width joiners are kept: Arabic, Hebrew and Persian
  text needs them);
* single-line fields (headlines, names, terms, credits; producers.article.SINGLE_LINE lists
  them): the same (which removes vertical tab, form feed and U+001C–U+001F with the other C0
  controls), then every run of spaces and line breaks (space, tab, line feed, carriage return,
  U+0085 NEL, U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR) becomes one space and the ends
  are trimmed. NewsML-G2 types these fields ``[\\S ]*`` (no whitespace but the space), so a tab in
  one made the whole newsMessage invalid; other spaces (no-break, thin, ideographic) are
  typography and are kept;
* bodies: the same, then sanitised to a safe HTML subset with nh3 (paragraphs, headings,
  lists, quotes, links, emphasis, line breaks; no script or style and their content, no
  event-handler or style attributes, links only to http, https and mailto, quote sources
  (``cite``) only to http and https; elements nested more than 32 deep unwrapped), and serialised
  as a well-formed XHTML fragment (no namespace: renderers put it in theirs).
"""

from __future__ import annotations

import re
from html import unescape

import nh3
from lxml import etree
from lxml import html as lxml_html

ALLOWED_TAGS = frozenset({
    "p", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "q", "cite", "a", "em",
    "strong", "b", "i", "u", "sub", "sup", "br", "hr", "abbr", "span", "table", "thead", "tbody",
    "tr", "th", "td", "figure", "figcaption", "pre", "code",
})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "q": {"cite"}, "blockquote": {"cite"},
                      "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan", "scope"}, "*": {"lang", "dir"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
DROP_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "template",
                               "svg", "math"})

_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x80-\x84\x86-\x9f\ud800-\udfff\ufffd\ufffe\uffff\ufeff\u202a-\u202e]"
)


#: space and the characters that break a line that clean_text keeps (see the module doc)
_LINE_BREAKING = re.compile("[ \t\n\r\x85\u2028\u2029]+")

_WEB_URL = re.compile(r"https?://", re.IGNORECASE)
#: elements nested deeper than this are unwrapped, their text kept: XML parsers refuse deep
#: documents (libxml2 stops at 256 levels, so every renderer would fail; its HTML parser drops
#: what follows past about 2,000), and no story needs it
MAX_DEPTH = 32
#: a tag as nh3 serialises it (attribute values always in double quotes, '"' inside escaped)
_TAG = re.compile(r'<(/?)([a-zA-Z][a-zA-Z0-9]*)(?:\s+[^\s"=>/]+(?:="[^"]*")?)*\s*/?>')
_VOID = frozenset({"br", "hr"})
#: a tag of a sanitised fragment (see body_text)
_MARKUP = re.compile(r"<[^>]*>")
#: a tag that ends a run of words (a block, a cell, a line break): its neighbours are two words
#: even with no space between them, as ``</p><p>`` in every serialised body
_WORD_BREAKING = re.compile(r"</?(?:p|h[2-6]|ul|ol|li|blockquote|br|hr|table|thead|tbody|tr|th|td"
                            r"|figure|figcaption|pre)\b[^>]*>")

# huge_tree: without it libxml2 silently empties a text run over 10 million characters.
_PARSER = lxml_html.HTMLParser(huge_tree=True)


def clean_text(text: str) -> str:
    """Remove the characters listed in the module doc (NEL becomes a line feed); nothing else changes."""
    return _UNSAFE_CHARS.sub("", text).replace("\x85", "\n")


def clean_line(text: str) -> str:
    """:func:`clean_text`, then whitespace collapsed to single spaces and trimmed (module doc)."""
    return _LINE_BREAKING.sub(" ", clean_text(text)).strip()


def has_unsafe_chars(text: str) -> bool:
    return _UNSAFE_CHARS.search(text) is not None


def sanitize_body(html: str) -> str:
    """A safe, well-formed XHTML fragment (no namespace) from any HTML fragment."""
    cleaned = nh3.clean(
        clean_text(html), tags=set(ALLOWED_TAGS), attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES), clean_content_tags=set(DROP_WITH_CONTENT), link_rel=None,
        strip_comments=True, attribute_filter=_cite_filter,
    )
    if not cleaned.strip():
        return ""
    # clean again: nh3 decodes character references, so "&#x202E;" or "&#xB;" only now become characters
    wrapper = lxml_html.fragment_fromstring(_flatten(clean_text(cleaned)), create_parent="div", parser=_PARSER)
    parts = [_escape(wrapper.text or "")]
    parts += [etree.tostring(child, method="xml", encoding="unicode", with_tail=True) for child in wrapper]
    return "".join(parts).strip()


def _flatten(html: str) -> str:
    """nh3's (balanced) output without the tags nested deeper than :data:`MAX_DEPTH`, text kept."""
    if html.count("</") <= MAX_DEPTH:
        return html
    depth, kept, start = 0, [], 0
    for tag in _TAG.finditer(html):
        closing, name = tag.group(1), tag.group(2).lower()
        if name in _VOID:
            too_deep = depth >= MAX_DEPTH
        elif closing:
            too_deep, depth = depth > MAX_DEPTH, depth - 1
        else:
            depth += 1
            too_deep = depth > MAX_DEPTH
        if too_deep:
            kept.append(html[start:tag.start()])
            start = tag.end()
    kept.append(html[start:])
    return "".join(kept)


def _cite_filter(tag: str, attribute: str, value: str) -> str | None:
    """nh3 checks the scheme of ``href`` but not of ``cite``: keep a cite only when it is http(s)."""
    if attribute == "cite" and not _WEB_URL.match(value):
        return None
    return value


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body_text(xhtml_fragment: str) -> str:
    """The plain text of a body fragment that :func:`sanitize_body` made (for word counts and
    summaries): its tags taken out and its character references read. Its serialisation
    escapes ``<`` and ``>`` everywhere but in tags, so a tag is ``<`` to the next ``>``."""
    if not xhtml_fragment:
        return ""
    return unescape(_MARKUP.sub("", xhtml_fragment))


def word_count(xhtml_fragment: str) -> int:
    """The words of a body fragment that :func:`sanitize_body` made: its text split at
    whitespace and at the tags that end a block or a line (``<p>a</p><p>b</p>`` is two words,
    ``<em>a</em>b`` one): what the producer stores as an event's ``word_count`` and ninjs says
    as ``wordCount`` (from the event's, when its seal verified: :mod:`newswire.seal`)."""
    return len(body_text(_WORD_BREAKING.sub(" ", xhtml_fragment)).split())
