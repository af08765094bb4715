"""Superdesk's own ingest parsers as test clients: ``NewsMLTwoFeedParser`` and ``NINJSFeedParser``
from superdesk-core 2.5.3 (``superdesk/io/feed_parsers/``), the code many newsrooms take agency
copy in with.

``deploy/dev.sh test`` installs superdesk-core without its dependencies (it would bring in
Flask, Eve, Celery, Elasticsearch and MongoDB clients). Its files are executed here as they
are installed; what they import from the Superdesk application is stubbed, and nothing else:

* the application (``flask.current_app`` / ``superdesk.app``): its ``config`` (the default
  ``QCODE_MISSING_VOC``) and ``subjects``, the IPTC Subject Codes a Superdesk installation
  registers at start (``superdesk/io/iptc.py``: its own ``io/data/subject_codes.json``), through
  which its NewsML-G2 parser names a ``subj:`` subject (a code it does not know is dropped);
* ``get_resource_service("vocabularies")``: a newsroom without custom vocabularies;
* the parts of the application stack the parser modules import names from: the parser
  registry (``register_feed_parser``), ``superdesk.errors`` (``ParserError``, ``SkipValue``),
  the item-metadata constants (``superdesk.metadata.item``: its ``eve``/``bson`` imports need a
  database) and ``SuperdeskBaseEnum``; the other feed parsers that ``feed_parsers/__init__``
  re-exports are placeholders.

Real, from superdesk-core: ``feed_parsers/__init__.py`` (the ``XMLFeedParser`` base),
``newsml_2_0.py``, ``ninjs.py``, ``superdesk/etree.py``, ``superdesk/utc.py`` and
``superdesk/metadata/utils.py``.
"""

from __future__ import annotations

import enum
import functools
import importlib.util
import json
import sys
import tempfile
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lxml import etree

VERSION = "2.5.3"


class _App:
    """The slice of a Superdesk application the two parsers read."""

    def __init__(self, root: Path) -> None:
        self.config: dict[str, Any] = {"QCODE_MISSING_VOC": "continue"}
        self.subjects = json.loads((root / "io" / "data" / "subject_codes.json").read_text(encoding="utf-8"))


class _NoVocabularies:
    def find_one(self, req, **lookup):
        return None


class _SuperdeskError(Exception):
    def __init__(self, code, exception=None, provider=None):
        super().__init__(f"Superdesk error {code}: {exception!r}")
        self.code, self.exception = code, exception

    @classmethod
    def newsmlTwoParserError(cls, exception=None, provider=None):  # noqa: N802 (Superdesk's name)
        return cls(1005, exception, provider)


class _SkipValue(Exception):
    pass


class _SuperdeskBaseEnum(enum.Enum):
    pass


class _Priority(_SuperdeskBaseEnum):
    Flash = 1
    Urgent = 2
    Three_Paragraph = 3
    Screen_Finance = 4
    Continuous_News = 5
    Ordinary = 6


class _ContentType:
    TEXT, PREFORMATTED, AUDIO, VIDEO, PICTURE = "text", "preformatted", "audio", "video", "picture"
    GRAPHIC, COMPOSITE, EVENT = "graphic", "composite", "event"


def _module(name: str, path: list[str] | None = None, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    if path is not None:
        module.__path__ = path
    module.__dict__.update(attributes)
    return module


def _placeholder(name: str) -> types.ModuleType:
    module = _module(name)
    module.__getattr__ = lambda attribute: None  # a re-exported parser nobody here uses
    return module


def _root() -> Path:
    spec = importlib.util.find_spec("superdesk")  # finds the files without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"superdesk-core {VERSION} is not installed: deploy/dev.sh test installs it (--no-deps)")
    return Path(next(iter(spec.submodule_search_locations)))


@contextmanager
def _isolated(stubs: dict[str, types.ModuleType]) -> Iterator[None]:
    """``stubs`` in sys.modules while the parser modules import; afterwards no ``flask`` or
    ``superdesk`` module is left there (the parsers keep what they imported in their globals;
    real libraries they imported, such as arrow, stay imported)."""
    ours = ("flask", "superdesk")
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] in ours}
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] in ours]:
            del sys.modules[name]
        sys.modules.update(saved)


def _execute(name: str, path: Path, *, package: bool = False) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def parsers() -> types.SimpleNamespace:
    """``newsml2`` and ``ninjs``: the two parser instances, and ``app`` (the stubbed application)."""
    root = _root()
    app = _App(root)
    siblings = [p.stem for p in (root / "io" / "feed_parsers").glob("*.py")
                if p.stem not in ("__init__", "newsml_2_0", "ninjs")]
    superdesk = _module("superdesk", [str(root)], app=app, config=types.SimpleNamespace(HTML_TAGS_WHITELIST=()),
                        get_resource_service=lambda name: _NoVocabularies())
    stubs = {
        "flask": _module("flask", current_app=app),
        "superdesk": superdesk,
        "superdesk.errors": _module("superdesk.errors", ParserError=_SuperdeskError, SkipValue=_SkipValue),
        "superdesk.utils": _module("superdesk.utils", SuperdeskBaseEnum=_SuperdeskBaseEnum),
        "superdesk.io": _module("superdesk.io", [str(root / "io")]),
        "superdesk.io.registry": _module("superdesk.io.registry", register_feed_parser=lambda name, parser: None),
        "superdesk.metadata": _module("superdesk.metadata", [str(root / "metadata")]),
        "superdesk.metadata.item": _module(
            "superdesk.metadata.item", ITEM_TYPE="type", CONTENT_TYPE=_ContentType, Priority=_Priority,
            GUID_TAG="tag", GUID_FIELD="guid", GUID_NEWSML="newsml"),
        **{f"superdesk.io.feed_parsers.{name}": _placeholder(f"superdesk.io.feed_parsers.{name}")
           for name in siblings},
    }
    with _isolated(stubs):
        superdesk.etree = _execute("superdesk.etree", root / "etree.py")
        _execute("superdesk.utc", root / "utc.py")
        _execute("superdesk.metadata.utils", root / "metadata" / "utils.py")
        # the package imports newsml_2_0 and ninjs (the real files) at its end
        package = _execute("superdesk.io.feed_parsers", root / "io" / "feed_parsers" / "__init__.py", package=True)
    return types.SimpleNamespace(newsml2=package.NewsMLTwoFeedParser(), ninjs=package.NINJSFeedParser(), app=app)


def parse_newsml(document: bytes) -> list[dict[str, Any]]:
    """Superdesk's items of a NewsML-G2 newsItem or newsMessage (as its ingest does: parse, then hand over)."""
    return parsers().newsml2.parse(etree.fromstring(document))


def parse_ninjs(data: bytes) -> list[dict[str, Any]]:
    """Superdesk's items of one ninjs document (its parser reads a file, as from an ingest folder)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as file:
        file.write(data)
        file.flush()
        return parsers().ninjs.parse(file.name)
