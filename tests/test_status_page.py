"""The operator's status page, as a person sees it in a real headless Chromium (Playwright)."""

from __future__ import annotations

import random
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from newswire import bus, corpus
from newswire.status.server import make_app
from tests.http_server import serving

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def consumed_with_a_dead_letter(settings):
    """A consumer group that has read two events and dead-lettered a third, hostile one."""
    kafka = bus.producer(settings)
    kafka.send(settings.topics.articles, key=b"bad-<script>", value=b"<script>alert(1)</script>")
    bus.publish_events(settings, kafka, [corpus.story(random.Random(9), f"page-{i}") for i in range(2)])
    kafka.close()
    loop = bus.EventLoop(settings, "newswire-feeds", lambda d: None)
    for _ in range(40):
        loop.poll_once(300)
        if loop.handled + loop.dead_lettered >= 3:
            break
    loop.close()
    assert (loop.handled, loop.dead_lettered) == (2, 1)
    return settings


def test_status_page_shows_lag_and_dead_letters_in_a_real_browser(consumed_with_a_dead_letter):
    settings = consumed_with_a_dead_letter
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(make_app(settings)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            expect(page.locator("h1")).to_have_text("newswire status")
            lag_rows = page.locator("#lag tbody tr")
            expect(lag_rows.filter(has_text="newswire-feeds")).to_have_count(settings.topics.articles_partitions)
            expect(page.locator("#dlq-total")).to_have_text("(1)")
            dead = page.locator("#dead-letters-latest tbody tr").first
            expect(dead).to_contain_text("undecodable")
            # a hostile key is shown as text, never run as markup
            expect(dead).to_contain_text("bad-<script>")
            assert page.evaluate("document.querySelectorAll('tbody script').length") == 0
            expect(page.locator("#updated")).not_to_have_text("never")
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_metrics_endpoint_speaks_prometheus(consumed_with_a_dead_letter):
    with serving(make_app(consumed_with_a_dead_letter)) as base:
        text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    assert 'newswire_events_consumed_total{consumer="newswire-feeds",outcome="dead_lettered"}' in text
    assert "newswire_publish_to_output_seconds_bucket" in text
