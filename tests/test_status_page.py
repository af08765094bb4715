"""The operator's status page, as a person sees it in a real headless Chromium (Playwright)."""

from __future__ import annotations

import os
import random
import re
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from newswire import bus, corpus
from newswire.broker import free_port
from newswire.config import Settings
from newswire.consumers.replay.checkpoint import Checkpoint
from newswire.consumers.webhooks import pusher, signing
from newswire.status.sections import standard_sections
from newswire.status.server import make_app
from tests.http_server import serving
from tests.topic_reader import drain
from tests.webhooks_support import PartnerServer, config, register, wait_for

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = os.environ.get("NEWSWIRE_TEST_CHROMIUM", "/usr/bin/chromium")  # deploy/dev.sh test-ahead wraps it
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def consumed_with_a_dead_letter(settings):
    """A consumer group that has read three events and dead-lettered a fourth, hostile one; a
    partner that received a story and its kill; an interrupted replay's checkpoint."""
    story = corpus.story(random.Random(9), "page-0")
    partner = PartnerServer([signing.new_secret()])
    partner.start()
    register(settings, "acme", partner)
    kafka = bus.producer(settings)
    kafka.send(settings.topics.articles, key=b"bad-<script>", value=b"<script>alert(1)</script>")
    bus.publish_events(settings, kafka, [story, corpus.next_version(story, "killed", kill_reason="Legal."),
                                         corpus.story(random.Random(10), "page-1")])
    kafka.close()
    with pusher.Running(settings, config()):
        wait_for(lambda: len(partner.received) == 3, "the partner received the story, its kill and one more")
    partner.stop()
    checkpoint = Checkpoint.open(settings.home, {"source": "kafka", "partner": "acme", "since": "7d"})
    checkpoint.window, checkpoint.outcomes = (0, None), {"queued": 42}
    checkpoint.save()
    loop = bus.EventLoop(settings, "newswire-feeds", lambda d: None)
    drain(loop, 4)
    loop.close()
    assert (loop.handled, loop.dead_lettered) == (3, 1)
    return settings


def test_status_page_shows_lag_and_dead_letters_in_a_real_browser(consumed_with_a_dead_letter):
    settings = consumed_with_a_dead_letter
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(make_app(settings, standard_sections(settings))) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            expect(page.locator("h1")).to_have_text("newswire status")
            lag_rows = page.locator("#lag tbody tr")
            expect(lag_rows.filter(has_text="newswire-feeds")).to_have_count(settings.topics.articles_partitions)
            # the hostile message was dead-lettered by both consumers that read it
            expect(page.locator("#dlq-total")).to_have_text("(2)")
            expect(page.locator("#dead-letters tbody tr")).to_have_count(2)
            expect(page.locator("#dead-letters tbody tr").filter(has_text="newswire-feeds")).to_contain_text("undecodable")
            dead = page.locator("#dead-letters-latest tbody tr").first
            expect(dead).to_contain_text("undecodable")
            # a hostile key is shown as text, never run as markup
            expect(dead).to_contain_text("bad-<script>")
            assert page.evaluate("document.querySelectorAll('tbody script').length") == 0
            acme = page.locator("#partners tbody tr").filter(has_text="acme")
            expect(acme).to_contain_text("yes")
            expect(acme.locator("td").nth(2)).not_to_have_text("–")  # a last success
            expect(page.locator("#deliveries tbody tr")).to_have_count(3)
            expect(page.locator("#deliveries tbody tr").first).to_contain_text("200")
            kill = page.locator("#kills tbody tr")
            expect(kill).to_have_count(1)
            expect(kill).to_contain_text("page-0")
            expect(kill).to_contain_text("yes")
            expect(page.locator("#replays tbody tr")).to_contain_text("partner=acme")
            expect(page.locator("#replays tbody tr")).to_contain_text("42")
            expect(page.locator("#updated")).not_to_have_text("never")
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_status_page_says_kafka_is_unreachable_instead_of_none(tmp_path):
    away = replace(Settings(), bootstrap_servers=f"127.0.0.1:{free_port()}", home=tmp_path / "home")
    with serving(make_app(away)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            lag = page.locator("#lag tbody td")
            expect(lag).to_have_text(re.compile(f"^Kafka at {re.escape(away.bootstrap_servers)} is not reachable"))
            expect(lag).to_have_class(re.compile(r"\bbad\b"))
            expect(page.locator("#partners tbody td")).to_have_text("none")  # no partners: truly none
        finally:
            browser.close()


def test_metrics_endpoint_speaks_prometheus(consumed_with_a_dead_letter):
    with serving(make_app(consumed_with_a_dead_letter)) as base:
        text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    assert 'newswire_events_consumed_total{consumer="newswire-feeds",outcome="dead_lettered"}' in text
    assert "newswire_publish_to_output_seconds_bucket" in text
