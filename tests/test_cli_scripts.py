"""The CLI as scripts use it: `--json` rows with the fields the README documents, the same exit
status for the same mistake in every command, no progress bars off a terminal, and output cut
short by its reader (`| head -1`) ending quietly."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from newswire import bus, codec, corpus, logs
from newswire.broker import free_port
from newswire.cli import EXIT_BROKEN_PIPE, EXIT_KAFKA, LAZY_COMMANDS, main
from newswire.config import Settings
from newswire.consumers.webhooks import outbox, store
from tests.cli_runner import invoke
from tests.replay_support import T0, cli_env, events, produce

README = Path(__file__).resolve().parent.parent / "README.md"
NEWSWIRE = [sys.executable, "-m", "newswire.cli"]


def documented() -> dict[str, list[str]]:
    """The README's *Output for scripts* table: command → its fields."""
    section = README.read_text().split("\n## Output for scripts\n", 1)[1].split("\n## ", 1)[0]
    return {command: [f.strip() for f in fields.split(",")]
            for command, fields in re.findall(r"^\| `([^`]+)` \| ([^|]+) \|$", section, re.M)}


def run(settings: Settings, *args: str):
    try:
        return invoke(main, ["--log-json", *args], env=cli_env(settings), catch_exceptions=False)
    finally:
        logs.configure("INFO", json=True)  # main() pointed the logs at the runner's (now closed) stderr


def json_rows(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def offline(tmp_path: Path) -> Settings:
    """Settings whose broker does not answer: the partner registry and receipts need none."""
    return replace(Settings(provider="Test Agency", id_authority="newswire.example.org"),
                   bootstrap_servers=f"127.0.0.1:{free_port()}", producer_timeout_s=2.0, home=tmp_path / "home")


def _deliveries(settings: Settings) -> None:
    """Two partners: acme got a story and its kill (one failed try first); slow has them pending."""
    for partner in ("acme", "slow"):
        assert run(settings, "partners", "add", partner, "--name", partner.title(),
                   "--url", f"http://127.0.0.1:9/{partner}", "--categories", "politics,world").exit_code == 0
    story = corpus.story(random.Random(3), "cli-1") | {"categories": ["politics"]}
    enqueuer = outbox.Enqueuer(settings)
    for event in (story, corpus.next_version(story, "killed")):
        enqueuer.handle(bus.Delivery(event, SimpleNamespace(value=codec.encode(event))))
    enqueuer.commit()
    enqueuer.close()
    db = store.connect(settings)
    try:
        rows = db.execute("SELECT * FROM deliveries WHERE partner_id = 'acme' ORDER BY seq").fetchall()
        now = time.time()
        outbox.record(db, [(rows[0], outbox.Attempt(503, 12.3, "HTTP 503", "retry", now), now - 2)])
        acme = db.execute("SELECT * FROM deliveries WHERE partner_id = 'acme' ORDER BY seq").fetchall()
        for row, at in zip(acme, (1, 0.5)):
            outbox.record(db, [(row, outbox.Attempt(200, 4.6, None, "delivered", None), now - at)])
    finally:
        db.close()


def test_listings_print_the_documented_fields_as_a_table_and_as_json_lines(offline: Settings) -> None:
    _deliveries(offline)
    fields = documented()
    for command in ("partners list", "deliveries status", "deliveries list", "deliveries kills"):
        args = command.split()
        table = run(offline, *args)
        assert table.exit_code == 0, table.stderr
        assert table.stdout.splitlines()[0].split("\t") == fields[command], command
        rows = json_rows(run(offline, *args, "--json"))
        assert rows and all(list(row) == fields[command] for row in rows), (command, rows)

    partners = {r["id"]: r for r in json_rows(run(offline, "partners", "list", "--json"))}
    assert (partners["acme"]["state"], partners["acme"]["delivered"], partners["acme"]["pending"]) == ("enabled", 2, 0)
    assert (partners["slow"]["pending"], partners["slow"]["last_seq"]) == (2, 2)
    attempts = json_rows(run(offline, "deliveries", "list", "--partner", "acme", "--json"))
    assert [(a["version"], a["outcome"], a["status"], a["attempt"]) for a in attempts] == [
        (2, "delivered", 200, 1), (1, "delivered", 200, 2), (1, "retry", 503, 1)]  # newest first
    assert attempts[0]["error"] is None and attempts[2]["error"] == "HTTP 503" and attempts[2]["ms"] == 12
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", attempts[0]["at"])
    kills = {k["partner"]: k for k in json_rows(run(offline, "deliveries", "kills", "--json"))}
    assert (kills["acme"]["delivered"], kills["slow"]["delivered"]) == (True, False)
    assert kills["slow"]["delivered_at"] is None and kills["acme"]["delivered_at"].endswith("Z")
    status = {s["partner"]: s for s in json_rows(run(offline, "deliveries", "status", "--json"))}
    assert status["acme"]["oldest_pending"] is None and status["slow"]["oldest_pending"].endswith("Z")

    gaps = run(offline, "deliveries", "gaps", "--partner", "slow", "--json")
    assert [list(r) for r in json_rows(gaps)] == [fields["deliveries gaps"]] * 2
    assert gaps.stderr.strip() == "2 unacknowledged"  # the count beside JSON lines goes to stderr
    table = run(offline, "deliveries", "gaps", "--partner", "slow").stdout.splitlines()
    assert table[0].split("\t") == fields["deliveries gaps"] and table[-1] == "2 unacknowledged"

    (shown,) = json_rows(run(offline, "partners", "show", "acme", "--json"))
    assert list(shown) == fields["partners show ID --json"]
    assert shown["subscription"]["categories"] == ["politics", "world"] and shown["secrets"][0].endswith("…")


def test_kafka_status_json_says_the_broker_does_not_answer(offline: Settings) -> None:
    result = subprocess.run([*NEWSWIRE, "kafka", "status", "--json"], capture_output=True, text=True, timeout=120,
                            env=cli_env(offline))
    assert result.returncode == EXIT_KAFKA
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert list(row) == documented()["kafka status"]
    assert row == {"bootstrap": offline.bootstrap_servers, "answers": False, "local_pid": None}


@pytest.mark.parametrize("args", [
    ["deliveries", "list"], ["archive", "list"], ["replay", "--group", "newswire-feeds"],
    ["replay", "--partner", "acme", "--until", "1d"], ["partners", "backfill", "acme"]])
def test_a_bad_since_is_a_usage_error_in_every_command(offline: Settings, args: list[str]) -> None:
    result = run(offline, *args, "--since", "yesterday")
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--since': 'yesterday' is neither an ISO 8601 time" in result.stderr


def test_a_bad_seq_is_a_usage_error_too(offline: Settings) -> None:
    result = run(offline, "deliveries", "resend", "--partner", "acme", "--seq", "9-3")
    assert result.exit_code == 2 and "Invalid value for '--seq': seq: range '9-3' ends before it starts" \
        in result.stderr


@pytest.mark.parametrize("args", [
    ["partners", "show", "nope"], ["partners", "disable", "nope"], ["partners", "enable", "nope"],
    ["partners", "update", "nope", "--name", "N"], ["partners", "rotate-secret", "nope"],
    ["partners", "backfill", "nope", "--since", "1d"], ["replay", "--partner", "nope", "--since", "1d"],
    ["deliveries", "list", "--partner", "nope"], ["deliveries", "kills", "--partner", "nope"],
    ["deliveries", "gaps", "--partner", "nope"], ["deliveries", "redrive", "--partner", "nope"],
    ["deliveries", "resend", "--partner", "nope", "--seq", "1"]])
def test_an_unknown_partner_is_exit_1_in_every_command(offline: Settings, args: list[str]) -> None:
    result = run(offline, *args)
    assert result.exit_code == 1, result.output
    assert "no partner 'nope'" in result.stderr


def test_output_whose_reader_went_away_ends_quietly(offline: Settings) -> None:
    _deliveries(offline)
    env = cli_env(offline)
    # a reader that is gone before the first write: the write fails, deterministically
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        gone = subprocess.run([*NEWSWIRE, "partners", "list"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120, env=env)
    finally:
        os.close(write_end)
    assert (gone.returncode, gone.stderr) == (EXIT_BROKEN_PIPE, "")
    # and a shell pipeline, as operators type it (head may exit before or after the last write)
    piped = subprocess.run(
        f"{' '.join(NEWSWIRE)} deliveries list --json | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120, env=env)
    first, said = piped.stdout.splitlines()
    assert json.loads(first)["partner"] in ("acme", "slow")
    assert said in ("status=0", f"status={EXIT_BROKEN_PIPE}") and piped.stderr == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal(offline: Settings, tmp_path: Path) -> None:
    files = [tmp_path / f"a{i}.json" for i in range(3)]
    for i, path in enumerate(files):
        path.write_text(json.dumps({"article_id": f"bar-{i}", "headline": "H", "language": "en", "body": "<p>b</p>"}))
    result = subprocess.run([*NEWSWIRE, "--log-level", "ERROR", "publish", *map(str, files)], capture_output=True,
                            text=True, timeout=120, env=cli_env(offline) | {"NEWSWIRE_PRODUCER_TIMEOUT": "2"})
    assert result.returncode == EXIT_KAFKA  # validated all three, then found no broker
    assert "validating" not in result.stderr and "file/s" not in result.stderr and "\r" not in result.stderr
    assert result.stderr.startswith(f"error: Kafka at {offline.bootstrap_servers} is not reachable")


def test_every_verb_is_reachable_and_a_call_imports_only_what_its_verb_needs(offline: Settings) -> None:
    listed = run(offline, "--help").stdout
    for name in LAZY_COMMANDS:
        assert re.search(rf"^  {name} ", listed, re.M), name
        assert run(offline, name, "--help").exit_code == 0, name
    assert "backfill" in run(offline, "partners", "--help").stdout  # added by the replay part
    probe = ("import sys; from newswire.cli import main\n"
             "try: main(['partners', 'list'])\n"
             "except SystemExit: pass\n"
             "print(sorted(m for m in ('trafilatura', 'aiohttp.web', 'newswire.producers.ingest_api',"
             " 'newswire.consumers.feeds.consumer', 'newswire.status.cli') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env=cli_env(offline))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"  # the page extractor, the servers: not for a listing


# --- against the broker ---------------------------------------------------------------------

def test_topics_list_json_has_the_documented_fields(settings: Settings) -> None:
    assert run(settings, "topics", "ensure").exit_code == 0  # every topic the system uses, not only the test's
    rows = {r["topic"]: r for r in json_rows(run(settings, "topics", "list", "--json"))}
    assert all(list(r) == documented()["topics list"] for r in rows.values())
    articles = rows[settings.topics.articles]
    assert (articles["state"], articles["partitions"]) == ("present", settings.topics.articles_partitions)
    assert articles["config"]["retention.ms"] == "-1" and articles["purpose"]


def test_replay_plans_a_group_reset_as_json_resets_only_with_execute_and_draws_no_bar_off_a_terminal(
        settings: Settings) -> None:
    produce(settings, events(12))
    since = (T0 - timedelta(minutes=1)).isoformat()
    seen: list[str] = []
    loop = bus.EventLoop(settings, "cli-feeds", lambda d: seen.append(d.event["event_id"]))
    deadline = time.monotonic() + 60
    while len(seen) < 12 and time.monotonic() < deadline:
        loop.poll_once(timeout_ms=500)
    loop.close()  # committed at the end of the log; the group has no member now
    assert len(seen) == 12
    misspelt = run(settings, "replay", "--group", "cli-feedz", "--since", since)
    assert misspelt.exit_code == 1, misspelt.stderr
    assert f"no consumer group 'cli-feedz' at {settings.bootstrap_servers} (groups there: " in misspelt.stderr
    assert "cli-feeds" in misspelt.stderr

    fields = documented()["replay --group … --json"]
    for _ in range(2):  # without --execute, nothing moves
        plan = run(settings, "replay", "--group", "cli-feeds", "--since", since, "--json")
        rows = json_rows(plan)
        assert [list(r) for r in rows] == [fields] * settings.topics.articles_partitions
        assert sum(r["to_replay"] for r in rows) == 12
        assert all((r["current_offset"] or 0) == r["log_end_offset"] for r in rows)
        assert "nothing changed (--execute resets it)" in plan.stderr
    done = run(settings, "replay", "--group", "cli-feeds", "--since", since, "--execute", "--json")
    assert "group cli-feeds reset: its consumers will re-read 12 events" in done.stderr
    after = json_rows(run(settings, "replay", "--group", "cli-feeds", "--since", since, "--json"))
    assert all(r["current_offset"] == r["new_offset"] for r in after)

    assert run(settings, "partners", "add", "acme", "--name", "Acme", "--url", "http://127.0.0.1:9/acme").exit_code == 0
    dry = subprocess.run([*NEWSWIRE, "replay", "--partner", "acme", "--since", since, "--dry-run", "--json"],
                         capture_output=True, text=True, timeout=120, env=cli_env(settings))
    assert dry.returncode == 0, dry.stderr
    rows = [json.loads(line) for line in dry.stdout.splitlines()]
    assert all(list(r) == documented()["replay --partner … --json"] for r in rows)
    assert sum(r["events"] for r in rows) == 12 and sum(sum(r["outcomes"].values()) for r in rows) == 12
    assert "would replay 12 events" in dry.stderr
    assert "event/s" not in dry.stderr and "%|" not in dry.stderr and "\r" not in dry.stderr  # no tqdm bar
