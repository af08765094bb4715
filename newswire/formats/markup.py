"""XML written as text: the escaping and element helpers the renderers build their documents
with (string templates, not element trees), byte for byte what lxml serialises.

Text is escaped as lxml escapes it (``&``, ``<``, ``>``; a carriage return as ``&#13;``, which
a parser would otherwise read as a line feed), attribute values also ``"``, tab and line feed,
so that ``]]>``, quotes and markup in any field stay characters.

What XML 1.0 does not allow at all (C0 controls but tab, line feed and carriage return; lone
surrogates; U+FFFE, U+FFFF) never reaches these helpers: every text of a
:class:`~newswire.formats.Story` has been cleaned of them (by :func:`~newswire.formats.prepare`,
or by the producer for a sealed event, :mod:`newswire.seal`), which is what the tests check
with hostile input against lxml, which refuses them. A lone surrogate would still fail the
UTF-8 encoding of :func:`document` (``UnicodeEncodeError``, a ``ValueError``).
"""

from __future__ import annotations

XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>\n"
_DECLARATION_BYTES = XML_DECLARATION.encode()


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


def text_bytes(value: str) -> bytes:
    """``value`` escaped as element content, in UTF-8 (as ``text(value).encode()``; escaping
    the encoded bytes is several times quicker for long non-ASCII texts such as bodies)."""
    data = value.encode()
    if b"&" in data:
        data = data.replace(b"&", b"&amp;")
    if b"<" in data:
        data = data.replace(b"<", b"&lt;")
    if b">" in data:
        data = data.replace(b">", b"&gt;")
    if b"\r" in data:
        data = data.replace(b"\r", b"&#13;")
    return data


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


def document(root: str | bytes) -> bytes:
    """``root`` (one element as text, or as UTF-8) as a standalone UTF-8 document with an XML declaration."""
    return _DECLARATION_BYTES + (root if isinstance(root, bytes) else root.encode())
