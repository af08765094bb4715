"""XML written as text: the escaping and element helpers the renderers build their documents
with (string templates, not element trees), byte for byte what lxml serialises.

Text is escaped as lxml escapes it (``&``, ``<``, ``>``; a carriage return as ``&#13;``, which
a parser would otherwise read as a line feed), attribute values also ``"``, tab and line feed,
so that ``]]>``, quotes and markup in any field stay characters. Characters XML 1.0 does not
allow (C0 controls but tab, line feed and carriage return; U+FFFE, U+FFFF) make
:func:`document` raise ``ValueError``, as lxml refuses them; a lone surrogate cannot be
encoded to UTF-8 (``UnicodeEncodeError``, a ``ValueError`` too). :func:`newswire.formats.prepare`
has removed them all from every field already; these checks only keep a document that reaches
a partner well-formed whatever comes in.
"""

from __future__ import annotations

import re

XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
#: what XML 1.0 does not allow in a document (lone surrogates fail the UTF-8 encoding)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def text(value: str) -> str:
    """``value`` escaped as element content."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    return value


def attribute(value: str) -> str:
    """``value`` escaped for a double-quoted attribute."""
    value = text(value)
    if '"' in value:
        value = value.replace('"', "&quot;")
    if "\t" in value or "\n" in value:
        value = value.replace("\t", "&#9;").replace("\n", "&#10;")
    return value


def attributes(pairs: dict[str, str | None]) -> str:
    """`` name="value"`` for each pair whose value is not None, in order."""
    return "".join(f' {name}="{attribute(value)}"' for name, value in pairs.items() if value is not None)


def element(tag: str, content: str | None = None, /, **pairs: str | None) -> str:
    """``<tag …>content</tag>`` with ``content`` escaped (``<tag …/>`` without content)."""
    attrs = attributes(pairs) if pairs else ""
    if content is None or content == "":
        return f"<{tag}{attrs}/>" if content is None else f"<{tag}{attrs}></{tag}>"
    return f"<{tag}{attrs}>{text(content)}</{tag}>"


def check(markup: str) -> str:
    """``markup``, or ValueError when it holds a character XML 1.0 does not allow."""
    found = _NOT_XML.search(markup)
    if found:
        raise ValueError(f"character U+{ord(found.group()):04X} is not allowed in XML 1.0 "
                         f"(at {markup[max(0, found.start() - 40):found.start()]!r})")
    return markup


def document(root: str) -> bytes:
    """``root`` (one element as text) as a standalone UTF-8 document with an XML declaration."""
    return (XML_DECLARATION + check(root)).encode()
