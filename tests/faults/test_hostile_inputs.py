"""Hostile inputs (tests/faults/hostile_corpus.py) through both producers, then garbage on the
topic, all consumed by a real consumer that renders every format.

Injected: every case of the corpus as a file given to ``newswire publish`` and as the body of
``POST /v1/articles`` on a real ingest API server on 127.0.0.1; kills and withdrawals with hostile
reasons (``POST .../kill``, ``newswire publish --kill``); then messages written straight onto the
articles topic of the real broker (not Avro, unknown fingerprints, truncated Avro, another schema's
Avro, hostile headers, and schema-valid events no producer would let through).

Asserted, per case: the CLI exits 1 naming the field of the rejected input (and prints no terminal
escape), or publishes it cleaned as documented; the ingest API answers 400/413/415/422 with the
field, or 202 and the cleaned event is on the topic. Then a real ``EventLoop`` whose handler renders
every event with every renderer consumes the whole topic: every message is consumed and its offset
committed, exactly the unusable ones are dead-lettered with their reason, and every output is valid
(NewsML-G2 2.35 XSD, ninjs 3.1 schema, feedparser without bozo) and holds no script, no event
handler, no javascript:.

The accepted inputs and the garbage are published once for the module (one CLI batch, one API
server, one consumer); each case is then its own test.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import aiohttp
import feedparser
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result
from kafka import TopicPartition
from lxml import etree

from newswire import bus, logs
from newswire.bus import EventLoop
from newswire.cli import main
from newswire.codec import ArticleEvent
from newswire.config import Settings
from newswire.formats import atom, newsml, ninjs, rss
from newswire.producers.ingest_api import create_app
from tests.corpus_cases import XHTML, assert_safe_xhtml
from tests.faults.hostile_corpus import (Case, Cleaned, EndCase, Rejected, TopicMessage, cases, end_cases,
                                         topic_garbage)
from tests.topic_reader import dead_letters
from tests.official_schemas import newsml_schema, ninjs_validator
from tests.replay_support import cli_env

pytestmark = pytest.mark.timeout(300)

CASES = cases()
GARBAGE = topic_garbage()
ENDS = end_cases()
CLI_ENDS = [e for e in ENDS if e.cli_reason is not None]
ENDED = {"kill": "killed", "withdraw": "withdrawn"}
CLI_CASES = [c for c in CASES if c.cli]
API_CASES = [c for c in CASES if c.api]
CLEANED = [c for c in CASES if isinstance(c.expected, Cleaned)]
TOKEN = "hostile-suite-token"
CONSUMER_GROUP = "hostile-renderers"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def rss_feed(events: list[ArticleEvent]) -> bytes:
    return rss.feed(events, title="Hostile", link="https://news.example.org/", description="Hostile inputs",
                    self_url="https://feeds.example.org/hostile.rss", updated=NOW)


def atom_feed(events: list[ArticleEvent]) -> bytes:
    return atom.feed(events, title="Hostile", link="https://news.example.org/", updated=NOW,
                     self_url="https://feeds.example.org/hostile.atom", feed_id="tag:newswire.example.org,2026:hostile")


#: the outputs of one event: name -> renderer
RENDERERS: dict[str, Callable[[ArticleEvent], bytes]] = {
    "newsml_item": newsml.news_item_bytes,
    "newsml_message": lambda e: newsml.news_message([e], sent=NOW, transmit_id="hostile-1"),
    "ninjs": lambda e: ninjs.dumps(ninjs.item(e)),
    "rss": lambda e: rss_feed([e]),
    "atom": lambda e: atom_feed([e]),
}
LINE = re.compile(r"^(?P<name>\S+)\tarticle_id=(?P<article_id>\S+) ")
XML_DECLARATION = re.compile(r"^<\?xml[^>]*\?>")
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def cli(settings: Settings, *args: str) -> Result:
    env = cli_env(settings) | {"NEWSWIRE_PRODUCER_TIMEOUT": str(settings.producer_timeout_s)}
    try:
        return CliRunner().invoke(main, ["--log-json", *args], env=env, catch_exceptions=False)
    finally:
        logs.configure("INFO", json=True)  # main() pointed the logs at the runner's (now closed) stderr


def write_case(directory: Path, case: Case, channel: str = "cli") -> Path:
    path = directory / f"{case.name}{case.suffix}"
    path.write_bytes(case.payload(channel))
    return path


def lookup(event: ArticleEvent, path: str) -> Any:
    """``bylines.0.name`` of an event."""
    value: Any = event
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


def visible(text: str, case_name: str) -> str:
    """``text`` as a reader would get it (entities decoded), lower case, without the case's own name."""
    return html.unescape(text).replace(case_name, "").lower()


# --- the run: publish everything once, consume once ------------------------------------------

@dataclass
class Run:
    cli: Result
    cli_published: dict[str, str]  #: file name -> article id printed by the CLI
    api: dict[str, tuple[int, Any]]  #: case name -> (status, JSON answer)
    api_ends: dict[str, tuple[int, Any]]  #: end case name -> (status, JSON answer) of the kill/withdrawal
    cli_ends: dict[str, Result]  #: end case name -> the CLI's kill/withdrawal
    end_offsets: dict[TopicPartition, int]  #: of the articles topic once everything was written
    consumed: int = 0
    committed: dict[TopicPartition, int | None] = field(default_factory=dict)  #: by the consumer, after its run
    events: dict[str, ArticleEvent] = field(default_factory=dict)  #: article id -> event the consumer read
    outputs: dict[str, dict[str, bytes]] = field(default_factory=dict)  #: article id -> renderer -> bytes
    dead: dict[str, str] = field(default_factory=dict)  #: key -> dead-letter reason


async def _post_all(settings: Settings) -> tuple[dict[str, tuple[int, Any]], dict[str, tuple[int, Any]]]:
    """Every API case, then each end case (its article, then its kill or withdrawal), over HTTP."""
    server = TestServer(create_app(settings, [TOKEN]), host="127.0.0.1")  # port 0: the OS picks a free one
    await server.start_server()
    answers, ends = {}, {}
    try:
        async with aiohttp.ClientSession() as session:
            async def post(path: str, body: bytes, content_type: str = "application/json",
                           content_encoding: str | None = None) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
                if content_encoding:
                    headers["Content-Encoding"] = content_encoding
                async with session.post(server.make_url(path), data=body, headers=headers) as response:
                    return response.status, await response.json(content_type=None)

            for case in API_CASES:
                answers[case.name] = await post("/v1/articles", case.payload("api"), case.content_type,
                                                case.content_encoding)
            for end in ENDS:
                status, answer = await post("/v1/articles", end.article("api"))
                assert status == 202, answer
                ends[end.name] = await post(f"/v1/articles/{end.article_id('api')}/{end.action}", end.raw)
    finally:
        await server.close()
    return answers, ends


def _write_garbage(settings: Settings) -> None:
    kafka = bus.producer(settings)
    try:
        futures = [kafka.send(settings.topics.articles, key=m.key.encode(), value=m.value, headers=list(m.headers))
                   for m in GARBAGE]
        kafka.flush(timeout=settings.producer_timeout_s)
        for future in futures:
            future.get(timeout=settings.producer_timeout_s)
    finally:
        kafka.close(timeout=settings.producer_timeout_s)


def _consume(settings: Settings, run: Run) -> None:
    def render_every_format(delivery: bus.Delivery) -> None:
        event = delivery.event
        outputs = {name: render(event) for name, render in RENDERERS.items()}  # ValueError: dead letter
        run.events[event["article_id"]] = event
        run.outputs[event["article_id"]] = outputs

    loop = EventLoop(settings, CONSUMER_GROUP, render_every_format)
    try:
        for _ in range(240):
            run.consumed += loop.poll_once(timeout_ms=250)
            if run.consumed >= sum(run.end_offsets.values()):
                break
    finally:
        loop.close()
    assert loop.handled + loop.dead_lettered == run.consumed


@pytest.fixture(scope="module")
def run(module_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Run:
    settings = module_settings
    directory = tmp_path_factory.mktemp("hostile-batch")
    files = [write_case(directory, case) for case in CLI_CASES if isinstance(case.expected, Cleaned)]
    for end in CLI_ENDS:
        files.append(directory / f"end.{end.name}.json")
        files[-1].write_bytes(end.article("cli"))
    batch = cli(settings, "publish", *map(str, files))
    published = {Path(m["name"]).stem: m["article_id"] for m in map(LINE.match, batch.stdout.splitlines()) if m}
    cli_ends = {end.name: cli(settings, "publish", f"--{end.action}", end.article_id("cli"), "--reason", end.cli_reason)
                for end in CLI_ENDS}
    answers, api_ends = asyncio.run(_post_all(settings))
    _write_garbage(settings)
    reader = bus.consumer(settings, None)
    try:
        offsets = bus.end_offsets(reader, settings.topics.articles)
    finally:
        reader.close()
    result = Run(cli=batch, cli_published=published, api=answers, api_ends=api_ends, cli_ends=cli_ends,
                 end_offsets=offsets)
    _consume(settings, result)
    group = bus.consumer(settings, CONSUMER_GROUP)
    try:
        result.committed = {tp: group.committed(tp) for tp in offsets}
    finally:
        group.close(autocommit=False)
    result.dead = {r.key.decode(): bus.header(r, "dlq.reason") for r in dead_letters(settings)}
    return result


# --- the checks of one event and of its outputs ---------------------------------------------------

def check_cleaned(case: Case | EndCase, event: ArticleEvent) -> None:
    expected = case.expected
    assert isinstance(expected, Cleaned)
    text = visible(json.dumps(event, default=str, ensure_ascii=False), case.name)
    left = [g for g in expected.gone if g.lower() in text]
    assert left == [], f"{case.name}: still in the event: {left!r}"
    for path, kept in expected.kept:
        assert kept in lookup(event, path), f"{case.name}: {path} lost {kept!r}: {lookup(event, path)!r}"


def entries(kind: str, events: list[ArticleEvent]) -> int:
    """Entries of ``events`` in a public feed: in RSS all (a kill or withdrawal as its notice), in
    Atom the live ones (a kill or withdrawal is a tombstone)."""
    return len(events) if kind == "rss" else sum(e["event_type"] not in ("killed", "withdrawn") for e in events)


def check_outputs(outputs: dict[str, bytes], events: list[ArticleEvent], gone: tuple[str, ...] = (),
                  name: str = "") -> None:
    """Every output of ``events`` valid against its official schema, feeds with their entries, and inert."""
    for kind, data in outputs.items():
        text = data.decode("utf-8")
        seen = visible(XML_DECLARATION.sub("", text), name)
        for word in ("<script", "javascript:", "vbscript:", "data:text/html", *gone):
            assert word.lower() not in seen, f"{kind}: {word!r} in {text[:3000]}"
        assert not HANDLER.search(seen), f"{kind}: event handler in {text[:3000]}"
        if kind == "ninjs":
            obj = json.loads(text)
            assert [e.message for e in ninjs_validator().iter_errors(obj)] == []
            for body in obj.get("bodies", []):
                assert_safe_xhtml(etree.fromstring(f'<div xmlns="{XHTML}">{body["value"]}</div>', SAFE_PARSER))
            continue
        root = etree.fromstring(data, SAFE_PARSER)
        for element in root.iter():
            if isinstance(element.tag, str):
                assert not any(etree.QName(a).localname.lower().startswith("on") for a in element.attrib), element.tag
                if etree.QName(element).localname == "html" or (
                        etree.QName(element).namespace == XHTML and etree.QName(element.getparent()).namespace != XHTML):
                    assert_safe_xhtml(element)
        if kind.startswith("newsml"):
            newsml_schema().assertValid(root)
        else:
            parsed = feedparser.parse(data)
            assert parsed.bozo == 0, parsed.get("bozo_exception")
            assert len(parsed.entries) == entries(kind, events)
            for encoded in root.iter("{http://purl.org/rss/1.0/modules/content/}encoded"):
                assert_safe_xhtml(etree.fromstring(f'<div xmlns="{XHTML}">{encoded.text}</div>', SAFE_PARSER))


# --- per case --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.name)
def test_cli(case: Case, run: Run, module_settings: Settings, tmp_path: Path) -> None:
    expected = case.expected
    if isinstance(expected, Cleaned):
        assert run.cli.exit_code == 0, run.cli.stderr
        article_id = case.article_id("cli")
        assert run.cli_published.get(case.name) == article_id
        check_cleaned(case, run.events[article_id])
        return
    path = write_case(tmp_path, case)
    result = cli(module_settings, "publish", str(path))
    assert result.exit_code == 1, result.output
    assert not LINE.search(result.stdout), "nothing may be published"
    lines = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert lines[0] == f"{path}: rejected"
    problems = [line[2:] for line in lines[1:] if line.startswith("  ")]
    assert any(p.startswith(f"{expected.field}: ") and expected.problem.lower() in p.lower() for p in problems), problems
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", result.stderr), "control characters echoed to the terminal"


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.name)
def test_api(case: Case, run: Run) -> None:
    status, answer = run.api[case.name]
    expected = case.expected
    if isinstance(expected, Cleaned):
        assert status == 202, answer
        article_id = case.article_id("api")
        assert answer["article_id"] == article_id
        event = run.events[article_id]
        assert event["event_id"] == answer["event_id"]
        check_cleaned(case, event)
        return
    assert status == expected.status, answer
    assert any(e["field"] == expected.field and expected.problem.lower() in e["problem"].lower()
               for e in answer["errors"]), answer
    assert case.article_id("api") not in run.events


@pytest.mark.parametrize("case", CLEANED, ids=lambda c: c.name)
def test_outputs_of_cleaned_input_are_valid_and_inert(case: Case, run: Run) -> None:
    channels = [ch for ch, on in (("cli", case.cli), ("api", case.api)) if on]
    for channel in channels:
        article_id = case.article_id(channel)
        assert article_id in run.outputs, f"{article_id} was not rendered: {run.dead.get(article_id)}"
        check_outputs(run.outputs[article_id], [run.events[article_id]], case.expected.gone, case.name)


@pytest.mark.parametrize("message", GARBAGE, ids=lambda m: m.name)
def test_message_on_the_topic(message: TopicMessage, run: Run) -> None:
    if message.dead_letter is None:
        assert message.key not in run.dead, run.dead[message.key]
        check_outputs(run.outputs[message.key], [run.events[message.key]], message.gone, message.name)
    else:
        assert message.key in run.dead
        assert message.dead_letter.lower() in run.dead[message.key].lower(), run.dead[message.key]
        assert message.key not in run.outputs


@pytest.mark.parametrize("end", ENDS, ids=lambda e: e.name)
def test_api_kill_or_withdrawal(end: EndCase, run: Run) -> None:
    status, answer = run.api_ends[end.name]
    event = run.events[end.article_id("api")]
    if isinstance(end.expected, Rejected):
        assert status == end.expected.status, answer
        assert any(e["field"] == end.expected.field and end.expected.problem.lower() in e["problem"].lower()
                   for e in answer["errors"]), answer
        assert (event["event_type"], event["version"]) == ("published", 1)
        return
    assert status == 202, answer
    assert (event["event_id"], event["event_type"], event["version"]) == (answer["event_id"], ENDED[end.action], 2)
    check_cleaned(end, event)
    check_outputs(run.outputs[end.article_id("api")], [event], end.expected.gone, end.name)


@pytest.mark.parametrize("end", CLI_ENDS, ids=lambda e: e.name)
def test_cli_kill_or_withdrawal(end: EndCase, run: Run) -> None:
    result = run.cli_ends[end.name]
    assert result.exit_code == 0, result.stderr
    assert LINE.search(result.stdout)
    event = run.events[end.article_id("cli")]
    assert event["version"] == 2 and event["event_type"] in ("killed", "withdrawn")
    check_cleaned(end, event)
    check_outputs(run.outputs[end.article_id("cli")], [event], end.expected.gone, end.name)


def test_no_consumer_stalls_every_message_is_consumed_and_only_garbage_is_dead_lettered(run: Run) -> None:
    accepted = {c.article_id(ch) for c in CLEANED for ch, on in (("cli", c.cli), ("api", c.api)) if on}
    accepted |= {e.article_id("api") for e in ENDS} | {e.article_id("cli") for e in CLI_ENDS}
    ended = sum(status == 202 for status, _ in run.api_ends.values()) + len(CLI_ENDS)
    rendered = {m.key for m in GARBAGE if m.dead_letter is None}
    assert run.consumed == sum(run.end_offsets.values()) == len(accepted) + ended + len(GARBAGE)
    assert run.committed == run.end_offsets  # the consumer committed past every message: nothing stuck
    assert set(run.outputs) == accepted | rendered
    assert set(run.dead) == {m.key for m in GARBAGE if m.dead_letter is not None}


def test_one_feed_and_one_news_message_of_every_rendered_event_are_valid(run: Run) -> None:
    events = list(run.events.values())
    check_outputs({"newsml_message": newsml.news_message(events, sent=NOW), "rss": rss_feed(events),
                   "atom": atom_feed(events)}, events)
