"""IPTC ninjs 2.2, for partners whose software reads ninjs 2.x, not 3.x.

The object is the ninjs 3.1 object of :mod:`newswire.formats.ninjs` in 2.2's spelling, which
has the same structure: property names in lower case (``pubStatus`` -> ``pubstatus``,
``contentType`` -> ``contenttype``, ...), ``embargoedUntil`` -> ``embargoed``, and no ``rel``
on an association (2.2 has none there; the association's ``name`` says what it is).
``standard`` names ninjs 2.2 and its schema.

Like 3.1, ninjs 2.2 holds ``associations`` and ``renditions`` as arrays: readers written for
ninjs 1.x (objects keyed by name) do not take them (docs/feeds.md, "Superdesk").
"""

from __future__ import annotations

from typing import Any, Iterable

from newswire.codec import ArticleEvent
from newswire.formats import EXAMPLE_AUTHORITY, Story, prepare, render_each
from newswire.formats import ninjs

SCHEMA_URI = "http://www.iptc.org/std/ninjs/ninjs-schema_2.2.json"
STANDARD = {"name": "ninjs", "version": "2.2", "schema": SCHEMA_URI}
#: 3.1 names whose 2.2 name is not just the lower case
RENAMED = {"embargoedUntil": "embargoed"}


def item(event: ArticleEvent, *, authority: str = EXAMPLE_AUTHORITY) -> dict[str, Any]:
    """The ninjs 2.2 object of ``event``, its ids minted by ``authority``."""
    return _object(prepare(event, authority=authority))


def items(events: Iterable[ArticleEvent], *, authority: str = EXAMPLE_AUTHORITY) -> list[dict[str, Any]]:
    """The ninjs 2.2 objects of ``events`` for a feed, one that cannot be rendered left out."""
    return render_each(events, _object, fmt="ninjs2", authority=authority)


def _object(story: Story) -> dict[str, Any]:
    obj = _spelt(ninjs.story_object(story))
    obj["standard"] = STANDARD
    for association in obj.get("associations", ()):
        del association["rel"]
    return obj


def _spelt(value: Any) -> Any:
    """``value`` with every key in 2.2's spelling (module doc)."""
    if isinstance(value, dict):
        return {RENAMED.get(key, key.lower()): _spelt(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_spelt(inner) for inner in value]
    return value
