"""The renderers as they were before they wrote text: lxml element trees serialised by lxml
(``newsml``, ``rss``, ``atom`` here are newswire.formats' modules of that time, unchanged but
for their imports). Kept for the tests only: the reference that the text renderers must match
byte for byte, hostile input included (tests/test_format_markup.py).
"""

from __future__ import annotations

from lxml import etree

from newswire.formats import XHTML, Story


def element(parent: etree._Element, tag: str, text: str | None = None, /, **attributes: str) -> etree._Element:
    """A new child ``tag`` of ``parent`` with ``text`` and ``attributes``."""
    child = etree.SubElement(parent, tag, attributes)
    if text is not None:
        child.text = text
    return child


def xhtml(fragment: str, wrapper: str = "div", **attributes: str) -> etree._Element:
    """A sanitised body ``fragment`` parsed inside ``<wrapper>`` in the XHTML namespace."""
    root = etree.fromstring(f'<{wrapper} xmlns="{XHTML}">{fragment}</{wrapper}>')
    for name, value in attributes.items():
        root.set(name, value)
    return root


def direction(story: Story) -> dict[str, str]:
    """``{"dir": "rtl"}`` for a right-to-left story, else nothing (attributes for XHTML)."""
    return {"dir": "rtl"} if story.rtl else {}
