"""docs/partners.md against what partners really receive: the real pusher and broker, real partner
HTTP servers on 127.0.0.1 (ninjs, NewsML-G2 and RSS). The guide's header table, JSON Schema,
example payloads and both signature snippets (Python, and JavaScript run by node) are checked
against those deliveries."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree
from standardwebhooks.webhooks import Webhook

from newswire.consumers.webhooks import partners, payloads, pusher
from newswire.consumers.webhooks.config import DEFAULT_SCHEDULE, WebhookConfig
from newswire.consumers.webhooks.signing import new_secret
from newswire.formats import registry
from tests.official_schemas import newsml_schema, validator
from tests.partner_examples import AT, AUTHORITY, EXAMPLES, SEQ, events, examples
from tests.webhooks_support import PartnerServer, Received, config, publish, query, register, wait_for

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "partners.md").read_text(encoding="utf-8")
#: the guide's prose with every run of white space as one space (lines wrap anywhere)
PROSE = " ".join(GUIDE.split())
ENVELOPE = validator(json.loads((ROOT / "docs" / "partners" / "ninjs-envelope.schema.json").read_text()))
#: headers the HTTP client adds by itself (the guide names them beside its table)
TRANSPORT = {"host", "content-length", "accept", "accept-encoding"}
NODE = shutil.which("node")

#: the media type of each format a partner may take
PUSH_TYPES = {name: registry.FORMATS[name].push_media_type for name in partners.FORMATS}


def code_block(language: str, contains: str) -> str:
    """The guide's first fenced ``language`` block containing ``contains``."""
    for block in re.findall(rf"```{language}\n(.*?)```", GUIDE, re.S):
        if contains in block:
            return block
    raise AssertionError(f"docs/partners.md has no {language} block with {contains!r}")


def documented_headers() -> set[str]:
    section = GUIDE.split("### Headers", 1)[1].split("\n## ", 1)[0]
    return {name.lower() for name in re.findall(r"^\| `([A-Za-z-]+)` \|", section, re.M)}


def python_verify():
    namespace: dict = {}
    exec(compile(code_block("python", "def verify("), "docs/partners.md", "exec"), namespace)
    return namespace["verify"]


def node_verify(cases: list[dict]) -> list[bool]:
    """Run the guide's JavaScript ``verify`` in node over ``cases`` (secret, headers, body, now)."""
    harness = code_block("js", "function verify(") + """
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((c) =>
    verify(c.secret, c.headers, Buffer.from(c.body, "base64"), ...(c.now === null ? [] : [c.now])));
  process.stdout.write(JSON.stringify(results));
});
"""
    done = subprocess.run([NODE, "-e", harness], input=json.dumps(cases), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def delivered(settings) -> int:
    return query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]


def signature_cases(secret: str, deliveries: list[Received]) -> list[tuple[dict, bool]]:
    """Real deliveries (genuine), and the same tampered, with another secret, out of the 5 minutes."""
    cases = []
    for r in deliveries:
        headers = {k.lower(): v for k, v in r.headers.items()}
        stamp = int(headers["webhook-timestamp"])
        cases += [({"secret": secret, "headers": headers, "body": r.body, "now": None}, True),
                  ({"secret": secret, "headers": headers, "body": r.body, "now": stamp + 299}, True),
                  ({"secret": secret, "headers": headers, "body": r.body, "now": stamp - 299}, True),
                  ({"secret": secret, "headers": headers, "body": r.body, "now": stamp + 301}, False),
                  ({"secret": secret, "headers": headers, "body": r.body + b" ", "now": None}, False),
                  ({"secret": new_secret(), "headers": headers, "body": r.body, "now": None}, False),
                  ({"secret": secret, "headers": headers | {"webhook-timestamp": "１７"}, "body": r.body,
                    "now": None}, False)]
    return cases


def test_the_examples_are_what_the_renderer_makes_and_valid():
    for name, text in examples().items():
        assert (EXAMPLES / name).read_text(encoding="utf-8") == text, \
            f"{name} is stale: .venv/bin/python -m tests.partner_examples writes it again"
        assert f"partners/examples/{name}" in GUIDE, f"the guide does not show {name}"
    for name in SEQ:
        envelope = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
        assert [e.message for e in ENVELOPE.iter_errors(envelope)] == [], name
    newsml_schema().assertValid(etree.fromstring((EXAMPLES / "story.newsml.xml").read_bytes()))


def test_the_schema_refuses_what_newswire_never_sends():
    kill = json.loads((EXAMPLES / "kill.json").read_text(encoding="utf-8"))
    assert not ENVELOPE.is_valid(kill | {"data": kill["data"] | {"pubStatus": "usable"}})
    assert not ENVELOPE.is_valid(kill | {"sequence": 0})
    assert not ENVELOPE.is_valid(kill | {"type": "article.deleted"})
    assert not ENVELOPE.is_valid(kill | {"extra": 1})
    story = json.loads((EXAMPLES / "story.json").read_text(encoding="utf-8"))
    assert not ENVELOPE.is_valid(story | {"data": {k: v for k, v in story["data"].items() if k != "bodies"}})
    assert not ENVELOPE.is_valid(story | {"data": story["data"] | {"version": 2}})


def test_the_guide_states_the_pushers_real_settings():
    defaults = WebhookConfig()
    assert f"`{','.join(f'{s:g}' for s in DEFAULT_SCHEDULE)}`" in PROSE
    assert f"({len(DEFAULT_SCHEDULE)} attempts in all" in PROSE
    assert f"gives up on an attempt after {defaults.timeout_s:g} seconds" in PROSE
    assert f"(at most {defaults.max_retry_after_s / 3600:g} hour)" in PROSE
    assert f"After {defaults.breaker_failures} failures in a row" in PROSE
    assert f"stops sending to you for {defaults.breaker_cooldown_s:g} seconds" in PROSE
    assert f"±{defaults.jitter * 100:g} %" in PROSE
    # the tolerance of the snippets is Standard Webhooks': a message 5 minutes and 1 second old is refused
    assert "TOLERANCE_S = 5 * 60" in code_block("python", "def verify(") and \
        "TOLERANCE_S = 5 * 60" in code_block("js", "function verify(")
    for content_type in PUSH_TYPES.values():
        assert f"`{content_type}`" in PROSE


@pytest.mark.broker
def test_real_deliveries_match_the_guide_and_its_snippets_verify_them(settings):
    secret = new_secret()
    servers = {fmt: PartnerServer([secret]).start() for fmt in PUSH_TYPES}
    for fmt, server in servers.items():
        register(settings, f"acme-{fmt}", server, format=fmt)
    sent = events()
    try:
        with pusher.Running(settings, config()):
            publish(settings, list(sent.values()))
            wait_for(lambda: delivered(settings) == len(sent) * len(servers), "every delivery acknowledged")
    finally:
        for server in servers.values():
            server.stop()
    by_id = {event["event_id"]: (name, event) for name, event in sent.items()}
    received = {fmt: server.snapshot() for fmt, server in servers.items()}

    for fmt, got in received.items():  # a retried attempt (one that timed out on a busy machine) comes twice
        assert all(r.verified for r in got), "the official standardwebhooks package refused a push"
        assert sorted({r.seq for r in got}) == list(range(1, len(sent) + 1))
        for r in got:
            headers = {k.lower(): v for k, v in r.headers.items()}
            assert set(headers) - TRANSPORT == documented_headers(), "the wire headers differ from the guide's table"
            assert headers["content-type"] == PUSH_TYPES[fmt]
            assert headers["webhook-id"] in by_id and headers["user-agent"].startswith("newswire-webhooks/")
        last = {r.seq: r for r in sorted(got, key=lambda r: r.at)}  # the attempt that was acknowledged
        arrived = [by_id[r.webhook_id][1] for r in sorted(last.values(), key=lambda r: r.at)]
        ceasefire = [e["version"] for e in arrived if e["article_id"] == "tml-2026-12-01-ceasefire"]
        assert ceasefire == [1, 2, 3, 4], "versions of one story arrived out of order"

    for r in received["ninjs"]:
        name, event = by_id[r.webhook_id]
        envelope = json.loads(r.body)
        assert [e.message for e in ENVELOPE.iter_errors(envelope)] == [], name
        assert envelope["sequence"] == r.seq
        assert r.body == payloads.render(event, "ninjs", seq=r.seq, at=AT, authority=AUTHORITY)
        if name in SEQ:  # the example file is this delivery, indented, with the example's number
            example = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
            assert example == envelope | {"sequence": SEQ[name]}
    for r in received["newsml"]:
        root = etree.fromstring(r.body)
        newsml_schema().assertValid(root)
        assert root.findtext("{*}header/{*}transmitId") == str(r.seq)
    for r in received["rss"]:
        item = etree.fromstring(r.body)
        assert item.tag == "item" and item.findtext("guid")

    deliveries = [r for got in received.values() for r in got]
    cases = signature_cases(secret, deliveries)
    verify = python_verify()
    assert [verify(c["secret"], c["headers"], c["body"], c["now"]) for c, _ in cases] == [ok for _, ok in cases]
    if NODE is None:
        pytest.fail("node is not installed: deploy/dev.sh test installs Debian's nodejs")
    as_json = [c | {"body": base64.b64encode(c["body"]).decode()} for c, _ in cases]
    assert node_verify(as_json) == [ok for _, ok in cases]
    # the snippets agree with the official package on the genuine ones
    for r in deliveries:
        Webhook(secret).verify(r.body, r.headers, json_parse=False)
