"""Library logging goes through the same structured output as newswire's own lines."""

from __future__ import annotations

import json
import logging

from newswire import logs


def test_kafka_python_lines_are_json_with_their_logger_and_quiet_by_default(capsys):
    logs.configure("INFO", json=True, kafka_level="WARNING")
    logging.getLogger("kafka.cluster").error("Metadata refresh: failed %s", "Cancelled")
    logging.getLogger("kafka.conn").info("connecting")  # below the kafka level: not shown
    logs.get("test").info("own_line", article_id="a-1")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["level"], line.get("logger")) for line in lines] == [
        ("Metadata refresh: failed Cancelled", "error", "kafka.cluster"), ("own_line", "info", None)]
    assert all("timestamp" in line for line in lines)

    logs.configure("INFO", json=True)  # the default: kafka-python's connection noise is not shown
    logging.getLogger("kafka.net.connection").error("Connection failed: ECONNREFUSED")
    logging.getLogger("aiohttp.access").info("GET / 200")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["event"], line["logger"]) for line in lines] == [("GET / 200", "aiohttp.access")]
