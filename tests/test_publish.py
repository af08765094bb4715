"""``newswire publish`` against the real broker: files, batches with invalid files, kills,
withdrawals, the latest-event lookup, and a broker that is down."""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from newswire import bus, corpus, logs
from newswire.broker import free_port
from newswire.cli import main
from newswire.config import Settings
from newswire.producers.article import ArticleError
from newswire.producers.latest import ArticleIndex, ArticleLog, ArticleLogs, ArticleNotFound, kill_event, latest_event, partition_of
from newswire.producers.publish import publish
from tests.cli_runner import invoke
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
        return invoke(main, ["--log-json", *args], env=env, catch_exceptions=False)
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


def test_the_index_of_a_partition_read_whole_follows_what_is_written_after_it(settings: Settings) -> None:
    """An article with no event makes the look-up read its partition whole, once; the index it
    leaves is brought up to the partition's end before every later answer (others' writes too)."""
    rng = random.Random(7)
    publish(settings, [corpus.story(rng, f"tml-bulk-{i}", body_bytes=200) for i in range(1200)])
    index = ArticleIndex()
    with ArticleLog(settings, index=index) as articles:
        assert articles.latest_or_none("tml-late") is None
        assert articles.latest("tml-bulk-7").event["article_id"] == "tml-bulk-7"
        late = corpus.story(rng, "tml-late")
        publish(settings, [late, corpus.story(rng, "tml-bulk-x")])  # another producer, after the index was made
        assert articles.latest("tml-late").event["event_id"] == late["event_id"]
    newer = corpus.next_version(late, "updated")
    publish(settings, [newer])
    kafka = bus.producer(settings)
    try:  # an undecodable record as the article's last: the look-up goes back to the one before
        kafka.send(settings.topics.articles, key=b"tml-late", value=b"not avro").get(timeout=10)
    finally:
        kafka.close()
    with ArticleLog(settings, index=index) as articles:
        found = articles.latest("tml-late")
        assert (found.event["event_id"], found.event["version"]) == (newer["event_id"], 2)
        with pytest.raises(ArticleNotFound):
            articles.latest("tml-never")


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


def test_publishing_the_same_file_again_makes_no_new_event(settings: Settings, tmp_path: Path) -> None:
    story = write(tmp_path / "once.json", article("tml-once") | {"occurred_at": None})  # defaulted: not content
    first = run(settings, "publish", str(story))
    again = [run(settings, "publish", str(story)) for _ in range(2)]
    twice_in_a_batch = run(settings, "publish", str(write(tmp_path / "pair.json", article("tml-pair"))),
                           str(tmp_path / "pair.json"))
    assert first.exit_code == 0 and all(r.exit_code == 0 for r in again), [r.stderr for r in again]
    (line,) = printed(first)
    for result in again:
        (repeat,) = [l for l in result.stdout.splitlines() if l]
        assert repeat == f"{story}\tarticle_id=tml-once version=1 event_type=published event_id={line['event_id']} " \
                         f"partition={line['partition']} offset={line['offset']} already published: nothing sent"
    assert twice_in_a_batch.exit_code == 0, twice_in_a_batch.stderr
    pair = twice_in_a_batch.stdout.splitlines()
    assert len(pair) == 2 and pair[1].endswith("already published: nothing sent")
    assert pair[0].split("\t")[1] + " already published: nothing sent" == pair[1].split("\t")[1]
    events = [e for e, _ in read_events(settings)]
    assert [(e["article_id"], e["event_id"]) for e in events if e["article_id"] == "tml-once"] == [
        ("tml-once", line["event_id"])]
    assert len(events) == 2


def test_a_version_the_topic_has_or_had_or_a_killed_story_is_refused_with_exit_1(settings: Settings,
                                                                                 tmp_path: Path) -> None:
    v1 = write(tmp_path / "v1.json", article("tml-stale"))
    v2 = write(tmp_path / "v2.json", article("tml-stale", version=2, first_created="2026-11-26T06:00:00Z"))
    assert run(settings, "publish", str(v1), str(v2)).exit_code == 0
    other = write(tmp_path / "other.json", article("tml-stale", version=2, first_created="2026-11-26T06:00:00Z",
                                                   headline="Other"))
    fresh = write(tmp_path / "fresh.json", article("tml-fresh"))
    result = run(settings, "publish", str(v1), str(other), str(fresh))
    assert result.exit_code == 1
    assert [l["article_id"] for l in printed(result)] == ["tml-fresh"]
    assert f"{v1}: refused\n  version: article 'tml-stale': version 1 sent, the topic already has version 2 " \
           "(updated, event " in result.stderr
    assert f"{other}: refused\n  version: article 'tml-stale': version 2 is already on the topic (updated, event " \
           in result.stderr and "with other content (headline); a change is version 3" in result.stderr
    assert "2 of 3 files rejected; 1 published" in result.stderr
    assert run(settings, "publish", "--kill", "tml-stale", "--reason", "Legal.").exit_code == 0
    v4 = write(tmp_path / "v4.json", article("tml-stale", version=4, first_created="2026-11-26T06:00:00Z"))
    after_kill = [run(settings, "publish", str(path)) for path in (v1, v4)]
    assert [r.exit_code for r in after_kill] == [1, 1]
    for result, version in zip(after_kill, (1, 4)):
        assert f"version: article 'tml-stale' was killed at version 3: version {version} refused, a kill is final" \
            in result.stderr
        assert result.stdout == ""
    assert sorted((e["article_id"], e["version"], e["event_type"]) for e, _ in read_events(settings)) == [
        ("tml-fresh", 1, "published"), ("tml-stale", 1, "published"), ("tml-stale", 2, "updated"),
        ("tml-stale", 3, "killed")]


def test_update_takes_version_and_first_created_from_the_latest_event(settings: Settings, tmp_path: Path) -> None:
    first = write(tmp_path / "v1.json", article("tml-up", first_created="2026-11-26T05:00:00Z"))
    assert run(settings, "publish", str(first)).exit_code == 0
    edited = write(tmp_path / "edit.json", article("tml-up", headline="Story tml-up, updated"))
    fix = write(tmp_path / "fix.json", article("tml-up", headline="Story tml-up, updated", event_type="corrected",
                                               correction_note="Corrected the headline."))
    result = run(settings, "publish", "--update", str(edited), str(fix))  # the second follows the first
    assert result.exit_code == 0, result.stderr
    assert [(l["version"], l["event_type"]) for l in printed(result)] == [("2", "updated"), ("3", "corrected")]
    again = run(settings, "publish", "--update", str(fix))  # a retry: the latest version already says this
    assert again.exit_code == 0, again.stderr
    third = printed(result)[1]
    assert again.stdout.rstrip().endswith(f"version=3 event_type=corrected event_id={third['event_id']} "
                                          f"partition={third['partition']} offset={third['offset']} "
                                          "already published: nothing sent")
    events = [e for e, _ in read_events(settings)]
    assert [(e["version"], e["event_type"], e["headline"]) for e in events] == [
        (1, "published", "Story tml-up"), (2, "updated", "Story tml-up, updated"),
        (3, "corrected", "Story tml-up, updated")]
    assert {e["first_created"].isoformat() for e in events} == {"2026-11-26T05:00:00+00:00"}


def test_update_is_refused_without_a_latest_event_after_a_kill_or_withdrawal_and_for_another_version(
        settings: Settings, tmp_path: Path) -> None:
    never = run(settings, "publish", "--update", str(write(tmp_path / "new.json", article("tml-new"))))
    assert never.exit_code == 1 and never.stdout == ""
    assert "article_id: article 'tml-new' has no event on topic " in never.stderr
    assert "publish its first version without --update" in never.stderr
    for name, action in (("tml-gone", "--kill"), ("tml-held", "--withdraw")):
        assert run(settings, "publish", str(write(tmp_path / f"{name}.json", article(name)))).exit_code == 0
        assert run(settings, "publish", action, name, "--reason", "Legal.").exit_code == 0
    gone, held = (run(settings, "publish", "--update", str(write(tmp_path / f"{n}-2.json", article(n))))
                  for n in ("tml-gone", "tml-held"))
    assert gone.exit_code == 1 and "article 'tml-gone' was killed at version 2; --update refused: a kill is final" \
        in gone.stderr
    assert held.exit_code == 1 and "article 'tml-held' was withdrawn at version 2; --update refused: to publish it " \
        "again, give version 3 in the file and leave out --update" in held.stderr
    assert run(settings, "publish", str(write(tmp_path / "ver.json", article("tml-ver")))).exit_code == 0
    other = run(settings, "publish", "--update", str(write(tmp_path / "o.json", article("tml-ver", version=7))))
    assert other.exit_code == 1
    assert "version: is 7, but --update makes version 2 of article 'tml-ver': leave version out" in other.stderr
    assert run(settings, "publish", "--update").exit_code == 2
    assert sorted((e["article_id"], e["version"]) for e, _ in read_events(settings)) == [
        ("tml-gone", 1), ("tml-gone", 2), ("tml-held", 1), ("tml-held", 2), ("tml-ver", 1)]


def test_a_servers_lookups_keep_one_reader_per_thread_and_replace_one_that_failed(settings: Settings) -> None:
    """The ingest API's look-ups reuse their thread's reader (no new Kafka client per request)."""
    publish(settings, [corpus.story(random.Random(3), "tml-pooled")])
    lookups = ArticleLogs(settings)
    try:
        with lookups.reader() as first:
            assert first.latest("tml-pooled").event["article_id"] == "tml-pooled"
        with lookups.reader() as again, pytest.raises(ArticleNotFound):
            again.latest("tml-never-pooled")  # a missing article is an answer, not a broken reader
        with lookups.reader() as kept:
            assert kept is first
        elsewhere: list[ArticleLog] = []

        def other_thread() -> None:
            with lookups.reader() as articles:
                elsewhere.append(articles)

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(60)
        assert elsewhere and elsewhere[0] is not first
        with pytest.raises(TimeoutError), lookups.reader():
            raise TimeoutError("the broker did not answer")
        with lookups.reader() as fresh:
            assert fresh is not first and fresh.latest("tml-pooled").event["article_id"] == "tml-pooled"
    finally:
        lookups.close()
