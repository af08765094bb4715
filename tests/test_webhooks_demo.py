"""The demo partner (`newswire webhooks demo-partner`, a real subprocess), registered as
`newswire run` does: it verifies what the pusher sends, prints it, and refuses a forgery."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from newswire import corpus
from newswire.broker import free_port
from newswire.consumers.webhooks import demo_partner, pusher, signing
from tests.http_server import serving
from tests.webhooks_support import cli, config, env_of, publish, query, wait_for


def test_the_demo_partner_verifies_and_prints_what_the_pusher_sends(settings, tmp_path):
    port = free_port()
    secret = signing.new_secret()
    cli(settings, "partners", "add", "demo", "--name", "Demo partner", "--url", f"http://127.0.0.1:{port}/webhook",
        "--secret", secret, "--allow-cidrs", "127.0.0.1/32")
    out = tmp_path / "demo.out"
    process = subprocess.Popen([sys.executable, "-m", "newswire.cli", "webhooks", "demo-partner", "--port", str(port),
                                "--secret", secret], env={**os.environ, **env_of(settings)},
                               stdout=out.open("w"), stderr=subprocess.STDOUT)
    story = corpus.story(random.Random(1), "demo-1", body_bytes=300)
    try:
        wait_for(lambda: "listening" in out.read_text(), "the demo partner to listen")
        with pusher.Running(settings, config(allow_cidrs=())):  # loopback is allowed for the demo partner only
            publish(settings, [story, corpus.next_version(story, "killed")])
            wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0]
                     == 2, "both delivered")
        forged = signing.headers("x", b"{}", [signing.new_secret()], content_type="application/json")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/webhook", data=b"{}", headers=forged)
        try:
            urllib.request.urlopen(request, timeout=10)
            status = 200
        except urllib.error.HTTPError as exc:
            status = exc.code
        wait_for(lambda: "REJECTED" in out.read_text(), "the forged push to be printed")
    finally:
        process.terminate()
        process.wait(15)
    printed = out.read_text()
    assert status == 401
    assert "seq=1 " in printed and "signature ok article.published v1 usable" in printed
    assert "seq=2 " in printed and "article.killed v2 canceled" in printed


def test_the_demo_partner_answers_408_to_a_push_whose_body_never_arrives():
    with serving(demo_partner.app("whsec_" + "A" * 32, body_timeout_s=1.0)) as base:
        url = urlsplit(base)
        with socket.create_connection((url.hostname, url.port), timeout=60) as stalled:
            stalled.sendall(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 100\r\n\r\n{")  # 99 bytes short, and no more coming
            answer = stalled.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "body not received within 1 s" in answer
