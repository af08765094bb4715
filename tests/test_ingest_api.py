"""The ingest API over real HTTP on 127.0.0.1 (aiohttp server and client) against the real broker."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from newswire.broker import free_port
from newswire.bus import header
from newswire.config import Settings
from newswire.producers.article import MAX_DOCUMENT_BYTES
from newswire.producers.ingest_api import create_app, tokens_from_env
from tests.topic_reader import read_events

TOKEN = "s3cret-token-for-the-cms"
OTHER = "second-token-of-another-desk"


def article(article_id: str = "tml-api-1", **extra) -> dict:
    return {"article_id": article_id, "headline": "Talks resume in Ankara", "language": "en",
            "body": "<p onclick='x()'>Officials said talks would continue.</p><script>x()</script>", **extra}


def serve(settings: Settings, scenario: Callable[[aiohttp.ClientSession, str], Awaitable[Any]]) -> Any:
    """Run ``scenario(session, base_url)`` against the app on a real 127.0.0.1 port."""
    async def main() -> Any:
        server = TestServer(create_app(settings, [TOKEN, OTHER]), host="127.0.0.1", port=free_port())
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                return await scenario(session, str(server.make_url("")).rstrip("/"))
        finally:
            await server.close()
    return asyncio.run(main())


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def answer(response: aiohttp.ClientResponse) -> tuple[int, dict, Any]:
    return response.status, dict(response.headers), await response.json()


def test_post_article_is_202_after_kafka_acknowledged(settings: Settings) -> None:
    async def scenario(session, base):
        async with session.post(f"{base}/v1/articles", json=article(), headers=auth(OTHER)) as r:
            return await answer(r)
    with capture_logs() as logged:
        status, _, body = serve(settings, scenario)
    assert status == 202
    ((event, record),) = read_events(settings)
    assert body == {"event_id": event["event_id"], "article_id": "tml-api-1", "version": 1, "event_type": "published",
                    "topic": settings.topics.articles, "partition": record.partition, "offset": record.offset,
                    "duplicate": False}
    assert event["body"] == "<p>Officials said talks would continue.</p>"
    (access,) = [entry for entry in logged if entry["event"] == "ingest_request"]
    assert (access["status"], access["article_id"], access["event_id"]) == (202, "tml-api-1", event["event_id"])
    assert TOKEN not in repr(logged) and OTHER not in repr(logged)


def test_kill_and_withdraw_through_the_api(settings: Settings) -> None:
    async def scenario(session, base):
        results = []
        async with session.post(f"{base}/v1/articles", json=article("tml-api-k"), headers=auth()) as r:
            results.append(await answer(r))
        for path, payload in [("withdraw", {"reason": "Checking a quote."}), ("kill", {"reason": "Legal."}),
                              ("kill", {"reason": "Again."}), ("kill", {}), ("kill", {"reason": "x", "why": 1})]:
            async with session.post(f"{base}/v1/articles/tml-api-k/{path}", json=payload, headers=auth()) as r:
                results.append(await answer(r))
        async with session.post(f"{base}/v1/articles/tml-api-none/kill", json={"reason": "x"}, headers=auth()) as r:
            results.append(await answer(r))
        return results
    first, withdrawn, killed, again, no_reason, extra, unknown = serve(settings, scenario)
    assert [s for s, _, _ in (first, withdrawn, killed)] == [202, 202, 202]
    assert (withdrawn[2]["version"], withdrawn[2]["event_type"]) == (2, "withdrawn")
    assert (killed[2]["version"], killed[2]["event_type"]) == (3, "killed")
    assert again[0] == 422 and "a kill is final" in again[2]["errors"][0]["problem"]
    assert no_reason[0] == 422 and no_reason[2]["errors"] == [{"field": "reason", "problem": "is required: a string saying why"}]
    assert extra[0] == 422 and extra[2]["errors"] == [{"field": "why", "problem": "unknown field"}]
    assert unknown[0] == 404 and unknown[2]["errors"][0]["field"] == "article_id"
    events = [e for e, _ in read_events(settings)]
    assert [(e["version"], e["event_type"], e["kill_reason"]) for e in events] == [
        (1, "published", None), (2, "withdrawn", "Checking a quote."), (3, "killed", "Legal.")]


def test_auth_and_error_codes(settings: Settings) -> None:
    url_ok = article("tml-api-e")

    async def scenario(session, base):
        url = f"{base}/v1/articles"
        cases = {
            "no token": session.post(url, json=url_ok),
            "wrong token": session.post(url, json=url_ok, headers=auth("s3cret-token-for-the-cmx")),
            "basic auth": session.post(url, json=url_ok, headers={"Authorization": "Basic czNjcmV0"}),
            "not json": session.post(url, data=b'{"headline": ', headers=auth() | {"Content-Type": "application/json"}),
            "bad utf-8": session.post(url, data=b'{"headline": "caf\xe9"}',
                                      headers=auth() | {"Content-Type": "application/json"}),
            "too large": session.post(url, data=b" " * (MAX_DOCUMENT_BYTES + 1),
                                      headers=auth() | {"Content-Type": "application/json"}),
            "form": session.post(url, data={"headline": "x"}, headers=auth()),
            "latin-1 json": session.post(url, data=b"{}", headers=auth() | {
                "Content-Type": "application/json; charset=iso-8859-1"}),
            "invalid": session.post(url, json=article("tml api", urgency=0, images=[{"url": "javascript:alert(1)"}]),
                                    headers=auth()),
            "health": session.get(f"{base}/healthz"),
        }
        out = {}
        for name, request in cases.items():
            async with request as r:
                out[name] = await answer(r)
        return out

    got = serve(settings, scenario)
    status, headers, body = got["no token"]
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert body["errors"] == [{"field": "Authorization", "problem": "a bearer token is required"}]
    status, headers, body = got["wrong token"]
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert got["basic auth"][0] == 401
    assert got["not json"][0] == 400 and got["not json"][2]["errors"][0]["problem"].startswith("not valid JSON")
    assert got["bad utf-8"][0] == 400
    assert got["bad utf-8"][2]["errors"] == [{"field": "$", "problem":
                                             "not valid UTF-8: byte 0xe9 at offset 17 (invalid continuation byte)"}]
    assert got["too large"][0] == 413 and got["too large"][2]["errors"][0]["field"] == "$"
    assert got["form"][0] == 415 and got["form"][2]["errors"][0]["field"] == "Content-Type"
    assert got["latin-1 json"][0] == 415
    status, _, body = got["invalid"]
    assert status == 422
    assert {e["field"] for e in body["errors"]} == {"article_id", "urgency", "images[0].url"}
    assert {"field": "images[0].url", "problem": "javascript: URLs are not allowed; use http or https"} in body["errors"]
    assert got["health"][0] == 200 and got["health"][2]["status"] == "ok"
    assert read_events(settings) == []  # nothing rejected reached Kafka


def test_broker_down_is_503_with_a_clear_message(tmp_path: Path) -> None:
    down = replace(Settings(provider="Test Agency"), bootstrap_servers=f"127.0.0.1:{free_port()}", producer_timeout_s=2.0,
                   home=tmp_path / "home")

    async def scenario(session, base):
        async with session.post(f"{base}/v1/articles", json=article(), headers=auth()) as r:
            first = await answer(r)
        async with session.post(f"{base}/v1/articles/tml-api-1/kill", json={"reason": "x"}, headers=auth()) as r:
            return first, await answer(r)

    (status, headers, body), (kill_status, _, kill_body) = serve(down, scenario)
    assert status == 503 and headers["Retry-After"] == "5"
    assert body["errors"][0]["field"] == "kafka"
    assert f"Kafka at {down.bootstrap_servers} is not reachable" in body["errors"][0]["problem"]
    assert kill_status == 503 and down.bootstrap_servers in kill_body["errors"][0]["problem"]


def test_tokens_come_from_the_environment_and_are_required(tmp_path: Path) -> None:
    assert tokens_from_env({"NEWSWIRE_INGEST_TOKENS": " a1 , ,b2,"}) == ("a1", "b2")
    with pytest.raises(ValueError, match="NEWSWIRE_INGEST_TOKENS"):
        create_app(Settings(), tokens_from_env({}))


def test_slow_request_bodies_are_cut_off_and_their_connections_closed(settings: Settings) -> None:
    """20 clients with a valid token send their bodies a byte at a time: each gets a 408 and its
    connection closed, while a normal request still goes through."""
    async def main() -> tuple[list[bytes], int]:
        server = TestServer(create_app(settings, [TOKEN], body_timeout_s=1.0), host="127.0.0.1", port=free_port())
        await server.start_server()
        try:
            connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]
            for _, writer in connections:
                writer.write(f"POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                             "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{".encode())

            async def dribble(writer: asyncio.StreamWriter, answered: asyncio.Event) -> None:
                try:
                    while not answered.is_set() and not writer.is_closing():
                        writer.write(b" ")
                        await writer.drain()
                        await asyncio.sleep(0.1)
                except ConnectionError:
                    pass  # the server closed the connection

            async def answer(reader: asyncio.StreamReader, answered: asyncio.Event) -> bytes:
                """The server's answer, then its end of stream (the server closed the connection).
                The dribbling stops once the answer is in, so that the close finds nothing unread
                (which would make it a reset that can discard the answer before it is read)."""
                head = await reader.readuntil(b"\r\n\r\n")
                answered.set()
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                body = await reader.readexactly(length)
                try:
                    closed = await reader.read() == b""
                except ConnectionResetError:
                    closed = True
                return head + body if closed else b"not closed: " + head + body

            events = [asyncio.Event() for _ in connections]
            dribblers = [asyncio.create_task(dribble(writer, e)) for (_, writer), e in zip(connections, events)]
            # wait on the condition: every connection answered and then closed by the server
            answers = await asyncio.wait_for(asyncio.gather(*(answer(reader, e) for (reader, _), e
                                                              in zip(connections, events))), 120)
            for task in dribblers:
                task.cancel()
            async with aiohttp.ClientSession() as session:
                async with session.post(server.make_url("/v1/articles"), json=article("tml-api-after-slow"),
                                        headers=auth()) as r:
                    after = r.status
            for _, writer in connections:
                writer.close()
            return answers, after
        finally:
            await server.close()

    answers, after = asyncio.run(main())
    assert len(answers) == 20
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"did not arrive within 1 s" in answer
    assert after == 202
    assert [e["article_id"] for e, _ in read_events(settings)] == ["tml-api-after-slow"]


def test_the_same_publish_sent_again_makes_no_new_event_across_servers_and_concurrently(settings: Settings) -> None:
    """The answer comes from the topic: a second server (another process, or this one restarted)
    knows what the first published; five identical requests at once make one event."""
    story = article("tml-api-once")  # no occurred_at: its default (the time of sending) is not content

    async def post(session, base, document):
        async with session.post(f"{base}/v1/articles", json=document, headers=auth()) as r:
            return await answer(r)

    async def first(session, base):
        return [await post(session, base, story) for _ in range(2)]

    async def second(session, base):
        together = await asyncio.gather(*(post(session, base, article("tml-api-burst")) for _ in range(5)))
        return [await post(session, base, story), *together]

    (s1, _, b1), (s2, _, b2) = serve(settings, first)
    (s3, _, b3), *burst = serve(settings, second)
    assert (s1, b1["duplicate"]) == (202, False)
    assert (s2, s3) == (200, 200) and b2 == b3 == {**b1, "duplicate": True}
    assert sorted(status for status, _, _ in burst) == [200, 200, 200, 200, 202]
    assert len({body["event_id"] for _, _, body in burst}) == 1
    events = [e for e, _ in read_events(settings)]
    assert sorted((e["article_id"], e["event_id"]) for e in events) == sorted(
        [("tml-api-once", b1["event_id"]), ("tml-api-burst", burst[0][2]["event_id"])])


def test_a_version_the_topic_has_or_had_is_refused_with_409_naming_both_versions(settings: Settings) -> None:
    async def scenario(session, base):
        out = []
        for path, document in [
                ("/v1/articles", article("tml-api-v")),
                ("/v1/articles", article("tml-api-v", headline="Another headline")),  # same version, other content
                ("/v1/articles", article("tml-api-v", version=2, first_created="2026-11-26T06:00:00Z")),
                ("/v1/articles", article("tml-api-v")),  # v1 again, after v2
                ("/v1/articles/tml-api-v/kill", {"reason": "Legal."}),
                ("/v1/articles", article("tml-api-v", version=4, first_created="2026-11-26T06:00:00Z"))]:
            async with session.post(f"{base}{path}", json=document, headers=auth()) as r:
                out.append(await answer(r))
        return out

    v1, other, v2, stale, kill, after_kill = serve(settings, scenario)
    assert [v1[0], v2[0], kill[0]] == [202, 202, 202]
    assert other[0] == 409
    (error,) = other[2]["errors"]
    assert error["field"] == "version" and error["problem"].startswith(
        "article 'tml-api-v': version 1 is already on the topic (published, event ")
    assert "with other content (headline); a change is version 2" in error["problem"]
    assert stale[0] == 409 and stale[2]["errors"][0]["problem"].startswith(
        "article 'tml-api-v': version 1 sent, the topic already has version 2 (updated, event ")
    assert after_kill[0] == 409 and after_kill[2]["errors"][0]["problem"] == (
        "article 'tml-api-v' was killed at version 3: version 4 refused, a kill is final")
    assert [(e["version"], e["event_type"]) for e, _ in read_events(settings)] == [
        (1, "published"), (2, "updated"), (3, "killed")]


def test_an_idempotency_key_answers_the_same_request_again_and_refuses_another(settings: Settings) -> None:
    async def scenario(session, base):
        out = {}
        for name, path, document, key in [
                ("v1", "/v1/articles", article("tml-api-key"), "cms-1"),
                ("v1 again", "/v1/articles", article("tml-api-key"), "cms-1"),
                ("v2 with v1's key", "/v1/articles", article("tml-api-key", version=2, first_created="2026-11-26T06:00:00Z"), "cms-1"),
                ("withdraw", "/v1/articles/tml-api-key/withdraw", {"reason": "Checking."}, "cms-2"),
                ("withdraw again", "/v1/articles/tml-api-key/withdraw", {"reason": "Checking."}, "cms-2"),
                ("kill with the withdrawal's key", "/v1/articles/tml-api-key/kill", {"reason": "Checking."}, "cms-2"),
                ("bad key", "/v1/articles", article("tml-api-key"), "not a key\u00e9")]:
            async with session.post(f"{base}{path}", json=document,
                                    headers=auth() | {"Idempotency-Key": key}) as r:
                out[name] = await answer(r)
        return out

    got = serve(settings, scenario)
    assert (got["v1"][0], got["v1 again"][0]) == (202, 200)
    assert got["v1 again"][2] == {**got["v1"][2], "duplicate": True}
    assert got["v2 with v1's key"][0] == 422
    (error,) = got["v2 with v1's key"][2]["errors"]
    assert error["field"] == "Idempotency-Key" and "was used for another request" in error["problem"]
    assert (got["withdraw"][0], got["withdraw again"][0]) == (202, 200)
    assert got["withdraw again"][2] == {**got["withdraw"][2], "duplicate": True}
    assert got["kill with the withdrawal's key"][0] == 422
    assert got["bad key"][0] == 400 and got["bad key"][2]["errors"][0]["field"] == "Idempotency-Key"
    events = read_events(settings)
    assert [(e["version"], e["event_type"]) for e, _ in events] == [(1, "published"), (2, "withdrawn")]
    assert [header(r, "idempotency_key") for _, r in events] == ["cms-1", "cms-2"]
