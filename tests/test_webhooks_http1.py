"""The pusher's HTTP/1.1 client (consumers/webhooks/http1.py) against real aiohttp servers:
kept-alive connections, answers chunked or too long, Retry-After, header injection, TLS
verified against the trust store, and the SSRF guard on a name that resolves to loopback."""

from __future__ import annotations

import asyncio
import resource
import ssl
import subprocess
from pathlib import Path
from typing import Awaitable

import pytest
from aiohttp import web

from newswire.broker import free_port
from newswire.consumers.webhooks import delivery, http1, ssrf
from tests.webhooks_support import LOOPBACK


async def _answer(request: web.Request) -> web.StreamResponse:
    await request.read()
    what = request.match_info["what"]
    if what == "chunked":
        response = web.StreamResponse(status=500, reason="Broken")
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"first ", b"second ", b"third"):
            await response.write(part)
        await response.write_eof()
        return response
    if what == "big":
        return web.Response(status=502, body=b"x" * (4 * http1.MAX_BODY))
    if what == "slow":
        await asyncio.sleep(0.3)
        return web.Response(status=204)
    if what == "busy":
        return web.Response(status=503, headers={"Retry-After": "7"})
    return web.Response(status=204)


async def _serve(ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/{what}", _answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
    return runner, port


def _post(client: http1.Pool, url: str, headers: dict[str, str] | None = None) -> Awaitable[delivery.Response]:
    return delivery.post(client, url, b'{"x":1}', headers or {"content-type": "application/json"},
                         allow=LOOPBACK, timeout_s=5.0)


def test_answers_are_read_whole_or_cut_and_connections_are_kept_alive():
    async def main():
        runner, port = await _serve()
        client = delivery.session(ssrf.GuardedResolver(LOOPBACK), in_flight=4)
        base = f"http://127.0.0.1:{port}"
        try:
            oks = [(await _post(client, f"{base}/ok")) for _ in range(3)]
            chunked = await _post(client, f"{base}/chunked")
            busy = await _post(client, f"{base}/busy")
            big = await _post(client, f"{base}/big")
            after = await _post(client, f"{base}/ok")
            injected = await _post(client, f"{base}/ok", {"webhook-id": "evt\r\nx-evil: 1"})
            return oks, chunked, busy, big, after, injected, sum(map(len, client.idle.values()))
        finally:
            await client.close()
            await runner.cleanup()

    oks, chunked, busy, big, after, injected, idle = asyncio.run(main())
    assert all(r.ok and r.status == 204 for r in oks)
    assert chunked.status == 500 and chunked.error == "HTTP 500 Broken: first second third"
    assert busy.status == 503 and busy.retry_after == 7.0
    assert big.status == 502 and big.error.startswith("HTTP 502 Bad Gateway: xxxx")
    assert after.ok and after.status == 204  # a new connection after the cut one
    assert not injected.ok and "line break" in injected.error
    assert idle == 1  # one connection served everything but the cut answer's


def test_requests_one_after_the_other_go_on_one_kept_alive_connection():
    async def main():
        runner, port = await _serve()
        client = delivery.session(ssrf.GuardedResolver(LOOPBACK), in_flight=4)
        try:
            answers = []
            for _ in range(3):
                await _post(client, f"http://127.0.0.1:{port}/ok")
                answers.append(next(iter(client.idle.values()))[0].transport.get_extra_info("sockname")[1])
            return answers
        finally:
            await client.close()
            await runner.cleanup()

    assert len(set(asyncio.run(main()))) == 1


def test_idle_connections_are_kept_within_the_file_descriptor_limit():
    """20 requests at once open 20 connections; of them the pool keeps only what the limit of
    open files leaves beside the requests that may be in flight (here 16)."""
    async def main():
        runner, port = await _serve()
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        client = delivery.session(ssrf.GuardedResolver(LOOPBACK), in_flight=nofile - http1.RESERVED_FDS - 16)
        try:
            answers = await asyncio.gather(*(_post(client, f"http://127.0.0.1:{port}/slow") for _ in range(20)))
            return answers, sum(map(len, client.idle.values()))
        finally:
            await client.close()
            await runner.cleanup()

    answers, idle = asyncio.run(main())
    assert all(a.ok for a in answers) and idle == 16


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (openssl, Debian's)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_https_is_verified_against_the_trust_store(certificate, monkeypatch):
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def attempt() -> delivery.Response:
        runner, port = await _serve(server_tls)
        client = delivery.session(ssrf.GuardedResolver(LOOPBACK), in_flight=4)
        try:
            return await _post(client, f"https://127.0.0.1:{port}/ok")
        finally:
            await client.close()
            await runner.cleanup()

    untrusted = asyncio.run(attempt())
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the trust store now holds the partner's certificate
    trusted = asyncio.run(attempt())
    assert not untrusted.ok and untrusted.error.startswith("cannot connect") and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert trusted.ok and trusted.status == 204, trusted.error


def test_a_name_resolving_to_loopback_is_refused_at_connect_time():
    async def attempt() -> delivery.Response:
        runner, port = await _serve()
        client = delivery.session(ssrf.GuardedResolver(), in_flight=4)  # nothing allowed: loopback is refused
        try:
            return await delivery.post(client, f"http://localhost:{port}/ok", b"{}", {}, allow=(), timeout_s=5.0)
        finally:
            await client.close()
            await runner.cleanup()

    refused = asyncio.run(attempt())
    assert not refused.ok and refused.error.startswith("refused by the SSRF guard") and "loopback" in refused.error
