"""``newswire publish`` against the real broker: files, batches with invalid files, kills,
withdrawals, the latest-event lookup, and a broker that is down."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from newswire import corpus, logs
from newswire.broker import free_port
from newswire.cli import main
from newswire.config import Settings
from newswire.producers.article import ArticleError
from newswire.producers.latest import ArticleNotFound, kill_event, latest_event, partition_of
from newswire.producers.publish import publish
from tests.replay_support import cli_env
from tests.topic_reader import read_events

PAGE = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "tml-idlib-page.html"
LINE = re.compile(r"^(?P<name>\S+)\tarticle_id=(?P<article_id>\S+) version=(?P<version>\d+) "
                  r"event_type=(?P<event_type>\w+) event_id=(?P<event_id>[0-9a-f-]{36}) "
                  r"partition=(?P<partition>\d+) offset=(?P<offset>\d+)$")


def article(article_id: str, **extra) -> dict:
    return {"article_id": article_id, "headline": f"Story {article_id}", "language": "en",
            "body": f"<p>Body of {article_id}, עברית and عربي.</p>", "occurred_at": "2026-11-26T08:00:00+02:00",
            **extra}


def write(path: Path, document: dict | bytes) -> Path:
    path.write_bytes(document if isinstance(document, bytes) else json.dumps(document).encode())
    return path


def run(settings: Settings, *args: str):
    env = cli_env(settings) | {"NEWSWIRE_PRODUCER_TIMEOUT": str(settings.producer_timeout_s)}
    try:
        return CliRunner().invoke(main, ["--log-json", *args], env=env, catch_exceptions=False)
    finally:
        logs.configure("INFO", json=True)  # main() pointed the logs at the runner's (now closed) stderr


def printed(result) -> list[dict]:
    return [m.groupdict() for m in map(LINE.match, result.stdout.splitlines()) if m]


def test_publish_json_and_html_files(settings: Settings, tmp_path: Path) -> None:
    result = run(settings, "publish", str(write(tmp_path / "a.json", article("tml-a"))), str(PAGE))
    assert result.exit_code == 0, result.stderr
    lines = printed(result)
    assert [(l["article_id"], l["version"], l["event_type"]) for l in lines] == [
        ("tml-a", "1", "published"),
        ("themedialine.org:turkey-continues-talks-with-russia-on-idlib-fighting", "1", "published")]
    read = {event["event_id"]: (event, record) for event, record in read_events(settings)}
    for line in lines:
        event, record = read[line["event_id"]]
        assert (record.partition, record.offset) == (int(line["partition"]), int(line["offset"]))
        assert event["article_id"] == line["article_id"]
    assert read[lines[1]["event_id"]][0]["subheadline"].startswith("Ankara furthers")


def test_update_and_correction_are_new_versions_of_the_same_article(settings: Settings, tmp_path: Path) -> None:
    first = write(tmp_path / "v1.json", article("tml-b"))
    update = write(tmp_path / "v2.json", article("tml-b", version=2, first_created="2026-11-26T06:00:00Z"))
    fix = write(tmp_path / "v3.json", article("tml-b", version=3, event_type="corrected",
                                               correction_note="Corrected the place.",
                                               first_created="2026-11-26T06:00:00Z"))
    result = run(settings, "publish", str(first), str(update), str(fix))
    assert result.exit_code == 0, result.stderr
    events = [e for e, _ in read_events(settings)]
    assert [(e["version"], e["event_type"]) for e in events] == [(1, "published"), (2, "updated"), (3, "corrected")]
    assert len({r["partition"] for r in printed(result)}) == 1  # one article id, one partition, in order


def test_batch_with_invalid_files_publishes_the_valid_ones_and_reports_every_error(settings: Settings,
                                                                                  tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", article("tml-c"))
    bad = write(tmp_path / "bad.json", article("tml d", urgency=12, images=[{"url": "javascript:alert(1)"}]))
    broken = write(tmp_path / "broken.json", b'{"article_id": "tml-e", "headline": "caf\xe9"}')
    result = run(settings, "publish", str(good), str(bad), str(broken))
    assert result.exit_code == 1
    assert [l["article_id"] for l in printed(result)] == ["tml-c"]
    for expected in (f"{bad}: rejected", "  article_id: must be 1 to 128 characters", "  urgency: must be between 1 and 9",
                     "  images[0].url: javascript: URLs are not allowed", f"{broken}: rejected",
                     "  $: not valid UTF-8: byte 0xe9 at offset 40", "2 of 3 files rejected; 1 published"):
        assert expected in result.stderr
    assert [e["article_id"] for e, _ in read_events(settings)] == ["tml-c"]


def test_kill_of_a_published_article_is_the_next_version_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    story = article("tml-k", images=[{"url": "https://m.example.org/k.jpg", "caption": "Caption"}])
    assert run(settings, "publish", str(write(tmp_path / "k.json", story))).exit_code == 0
    assert run(settings, "publish", str(write(tmp_path / "k2.json", article(
        "tml-k", version=2, first_created="2026-11-26T05:00:00Z")))).exit_code == 0

    result = run(settings, "publish", "--kill", "tml-k", "--reason", "Legal: the court order of 26 November.")
    assert result.exit_code == 0, result.stderr
    (line,) = printed(result)
    assert (line["name"], line["version"], line["event_type"]) == ("tml-k", "3", "killed")
    killed, record = read_events(settings)[-1]
    assert (killed["version"], killed["event_type"], killed["kill_reason"]) == \
        (3, "killed", "Legal: the court order of 26 November.")
    assert killed["body"] == "" and killed["word_count"] == 0
    assert killed["headline"] == "Story tml-k" and killed["first_created"].isoformat() == "2026-11-26T05:00:00+00:00"
    assert killed["event_id"] == line["event_id"] and record.offset == int(line["offset"])

    again = run(settings, "publish", "--withdraw", "tml-k", "--reason", "x")
    assert again.exit_code == 1 and "tml-k was killed at version 3; a kill is final" in again.stderr


def test_withdraw_needs_a_reason_and_a_known_article(settings: Settings, tmp_path: Path) -> None:
    assert run(settings, "publish", str(write(tmp_path / "w.json", article("tml-w")))).exit_code == 0
    no_reason = run(settings, "publish", "--withdraw", "tml-w")
    assert no_reason.exit_code == 2 and "--reason is required" in no_reason.stderr
    blank = run(settings, "publish", "--withdraw", "tml-w", "--reason", "  ")
    assert blank.exit_code == 1 and "reason: is required" in blank.stderr
    unknown = run(settings, "publish", "--withdraw", "tml-nope", "--reason", "Checking facts.")
    assert unknown.exit_code == 1 and "article 'tml-nope' has no event on topic" in unknown.stderr
    done = run(settings, "publish", "--withdraw", "tml-w", "--reason", "Checking facts.")
    assert done.exit_code == 0 and printed(done)[0]["event_type"] == "withdrawn"


def test_latest_event_scans_back_across_chunks_in_the_key_partition(settings: Settings) -> None:
    rng = random.Random(5)
    target = corpus.story(rng, "tml-deep")
    newer = corpus.next_version(target, "updated")
    others = [corpus.story(rng, f"tml-other-{i}", body_bytes=200) for i in range(1200)]
    publish(settings, [target, newer, *others])
    found = latest_event(settings, "tml-deep")
    assert (found["event_id"], found["version"]) == (newer["event_id"], 2)
    records = {e["event_id"]: r for e, r in read_events(settings)}
    assert partition_of("tml-deep", settings.topics.articles, {0, 1, 2}) == records[newer["event_id"]].partition
    with pytest.raises(ArticleNotFound):
        latest_event(settings, "tml-never")


def test_kill_event_copies_the_story() -> None:
    latest = corpus.story(random.Random(1), "tml-x")
    killed = kill_event(latest, " Legal advice. ")
    assert {k for k in latest if killed[k] != latest[k]} == {"event_id", "event_type", "version", "occurred_at",
                                                            "body", "word_count", "kill_reason"}
    with pytest.raises(ArticleError, match="reason: is required"):
        kill_event(latest, "\x00")
    with pytest.raises(ArticleError, match="the last the event contract can hold"):
        kill_event({**latest, "version": 2**31 - 1}, "Legal advice.")


def test_publish_with_the_broker_down_fails_fast_and_clearly(tmp_path: Path) -> None:
    down = replace(Settings(provider="Test Agency"), bootstrap_servers=f"127.0.0.1:{free_port()}", producer_timeout_s=2.0,
                   home=tmp_path / "home")
    result = run(down, "publish", str(write(tmp_path / "a.json", article("tml-down"))))
    assert result.exit_code == 3
    (message,) = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert message.startswith(f"error: Kafka at {down.bootstrap_servers} is not reachable")
    assert result.stdout == ""
    killing = run(down, "publish", "--kill", "tml-down", "--reason", "Legal.")
    assert killing.exit_code == 3 and f"Kafka at {down.bootstrap_servers}" in killing.stderr
