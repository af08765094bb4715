"""Structured logs: one JSON object a line (or readable key=value on a terminal).

Every log line names what happened (``event``) and to what: ``article_id``, ``version``,
``event_id``, ``partner``, ``topic``/``partition``/``offset`` as they apply.

Libraries that log through the standard library (kafka-python, aiohttp) go through the same
renderer: their lines are JSON objects too, with the library's message as ``event`` and its
logger's name as ``logger``. kafka-python reports every failed connection attempt and metadata
refresh, many lines a second while a broker is away; newswire says itself, in one line, that
Kafka is not reachable, so kafka-python's lines are shown only from ``kafka_level`` (CRITICAL;
``--kafka-log-level`` / ``NEWSWIRE_KAFKA_LOG_LEVEL`` lowers it to look into a client problem).
"""

from __future__ import annotations

import logging
import sys

import structlog

LIBRARY_LOGGERS = ("kafka",)


#: the arguments of the last :func:`configure` call (None before the first)
_CONFIGURED: tuple[str, bool, str] | None = None


class _Handler(logging.StreamHandler):
    """The one handler :func:`configure` puts on the root logger (replaced by the next call)."""


def configure(level: str = "INFO", json: bool | None = None, kafka_level: str = "CRITICAL") -> None:
    """Set up structlog and the standard library's logging to write structured lines to stderr."""
    global _CONFIGURED
    if json is None:
        json = not sys.stderr.isatty()
    _CONFIGURED = (level, json, kafka_level)
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = _Handler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(kafka_level)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # one write per line (print() writes the line and its newline apart): processes that
        # share a log file (the pusher and its Kafka side) never run their lines together
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def current() -> tuple[str, bool, str] | None:
    """The arguments of the last :func:`configure` call, for a child process to log the same way."""
    return _CONFIGURED


def get(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
