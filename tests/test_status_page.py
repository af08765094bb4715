"""The operator's status page, as a person sees it in a real headless Chromium (Playwright)."""

from __future__ import annotations

import os
import random
import re
import urllib.error
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
from newswire.status.server import make_app
from tests.conftest import on_both_stores
from tests.http_server import serving
from tests.topic_reader import drain
from tests.webhooks_support import PartnerServer, cli, config, query, register, wait_for

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


@on_both_stores  # its search and charts read the webhook state
def test_status_page_shows_lag_and_dead_letters_in_a_real_browser(consumed_with_a_dead_letter):
    settings = consumed_with_a_dead_letter
    ARTIFACTS.mkdir(exist_ok=True)
    with serving(make_app(settings)) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # the first paint holds the data: the same page with scripts off shows it all
            page = browser.new_context(java_script_enabled=False).new_page()
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
            expect(page.locator("#updated")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d UTC$"))
            expect(page.locator("#charts svg")).to_have_count(2)  # deliveries, answer times (no archive here)
            expect(page.locator("#charts svg").first.locator("rect")).not_to_have_count(0)
            page = browser.new_page()  # and with scripts, it refreshes itself
            page.goto(base + "/")
            first = page.locator("#updated").text_content()
            expect(page.locator("#updated")).not_to_have_text(first, timeout=15_000)
            expect(page.locator("#dlq-total")).to_have_text("(2)")
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


OPERATOR_TOKEN = "op-" + "s3cret-token"


@pytest.fixture
def partner_with_a_dead_delivery(settings):
    """acme refuses the delivery numbered 1 until it is dead (and dead-lettered), takes number
    2; a third story published while no pusher runs is queued for no one (a backfill finds it)."""
    stories = [corpus.story(random.Random(20 + i), f"act-{i}") for i in range(3)]
    acme = PartnerServer([signing.new_secret()],
                         respond=lambda n, request: 500 if request.headers["newswire-sequence"] == "1" else 200).start()
    register(settings, "acme", acme)
    kafka = bus.producer(settings)
    bus.publish_events(settings, kafka, stories[:2])
    with pusher.Running(settings, config(schedule=(0, 0.2))):
        wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries WHERE status = 'dead'")[0][0] == 1
                 and query(settings, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] == 1,
                 "one delivery dead, one delivered")
    bus.publish_events(settings, kafka, stories[2:])
    kafka.close()
    acme.stop()
    (refused,) = query(settings, "SELECT article_id FROM deliveries WHERE seq = 1")[0]
    return settings, refused


@on_both_stores  # its search and charts read the webhook state
def test_operator_works_from_the_page_in_a_real_browser(partner_with_a_dead_delivery):
    settings, refused = partner_with_a_dead_delivery
    app = make_app(settings, webhook_config=config(), operator_token=OPERATOR_TOKEN)
    with serving(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(base + "/")
            # the pusher's dead letter names its partner, number and time (not None/None@None)
            dead = page.locator("#dead-letters-latest tbody tr").filter(has_text="partner acme seq 1")
            expect(dead).to_have_count(1)
            expect(dead.locator("td").first).to_have_text(re.compile(r"^\d{4}-\d\d-\d\dT"))
            expect(page.locator("#partners tbody tr").filter(has_text="acme")).to_contain_text("closed")

            # search: every version, every partner, each attempt's answer
            page.get_by_label("search").fill(refused)
            page.get_by_role("button", name="Find").click()
            expect(page.locator("section.version")).to_have_count(1)
            attempts = page.locator("section.version ol li")
            expect(attempts).to_have_count(2)
            expect(attempts.first).to_contain_text("retry 500")
            expect(attempts.nth(1)).to_contain_text("dead 500")
            (event_id,) = query(settings, "SELECT event_id FROM deliveries WHERE seq = 1")[0]
            page.goto(base + "/search?q=" + event_id)  # an event id finds its article's every version
            expect(page.locator("section.version h3")).to_contain_text(event_id)
            expect(page.locator("h2")).to_have_text(f"Article {refused}")
            page.goto(base + "/search?q=no-such-story")
            expect(page.locator("#not-found")).to_be_visible()

            # actions need the operator: a wrong token is refused, the right one signs in
            page.goto(base + "/partners/acme")
            expect(page.locator("#dead")).to_have_text("1")
            expect(page.get_by_role("button", name="Pause")).to_have_count(0)
            page.get_by_role("link", name="Sign in").click()
            page.get_by_label("operator token").fill("wrong")
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#login-failed")).to_be_visible()
            page.get_by_label("operator token").fill(OPERATOR_TOKEN)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(base + "/partners/acme")

            # a POST without the form's CSRF token is refused, even with the session cookie
            forged = page.request.post(base + "/partners/acme/pause", form={"reason": "forged"})
            assert forged.status == 403 and "CSRF" in forged.text()

            page.get_by_label("reason").fill("maintenance window")
            page.get_by_role("button", name="Pause").click()
            expect(page.locator(".messages")).to_contain_text("acme paused: maintenance window")
            expect(page.locator("#state")).to_have_text("paused: maintenance window")
            assert query(settings, "SELECT enabled FROM partners WHERE id = 'acme'")[0][0] == 0

            page.get_by_role("button", name="Resume").click()
            expect(page.locator("#state")).to_have_text("enabled")
            assert query(settings, "SELECT enabled FROM partners WHERE id = 'acme'")[0][0] == 1

            page.get_by_role("button", name="Redrive 1 dead").click()
            expect(page.locator(".messages")).to_contain_text("1 dead deliveries redriven")
            expect(page.locator("#dead")).to_have_text("0")
            expect(page.locator("#gap-list tbody tr").filter(has_text="pending")).to_have_count(1)

            page.get_by_label("sequence numbers").fill("2")
            page.get_by_role("button", name="Resend range").click()
            expect(page.locator(".messages")).to_contain_text("1 deliveries of seq 2-2 sent again")
            expect(page.locator("#gap-list tbody tr")).to_have_count(2)  # 1 (redriven) and 2 (resent)

            page.get_by_label("backfill since").fill("1d")
            page.get_by_role("button", name="Count backfill (dry run)").click()
            expect(page.locator("#count")).to_contain_text("would queue 1 deliveries", timeout=60_000)
            assert query(settings, "SELECT count(*) FROM deliveries")[0][0] == 2  # a dry run changes nothing
            page.get_by_role("button", name="Backfill 1 deliveries").click()
            expect(page.locator(".messages")).to_contain_text("backfill since")
            wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries")[0][0] == 3,
                     "the backfill queued the story acme never got", timeout_s=60)
            page.reload()
            expect(page.locator("#gap-list tbody tr").filter(has_text="act-2")).to_have_count(1)

            # the redriven dead letter no longer shows among the latest
            page.goto(base + "/")
            expect(page.locator("#dead-letters-latest tbody tr").filter(has_text="partner acme")).to_have_count(0)
            expect(page.locator("#dlq-total")).to_have_text("(1)")  # the tally still counts it

            page.goto(base + "/partners/acme")
            page.get_by_role("button", name="Sign out").click()
            page.goto(base + "/partners/acme")
            expect(page.get_by_role("button", name="Pause")).to_have_count(0)
            refused_now = page.request.post(base + "/partners/acme/pause", form={"reason": "late"})
            assert refused_now.status == 401
        finally:
            browser.close()


def test_actions_are_off_without_an_operator_token(partner_with_a_dead_delivery):
    settings, _ = partner_with_a_dead_delivery
    with serving(make_app(settings)) as base:
        request = urllib.request.Request(base + "/partners/acme/redrive", data=b"", method="POST",
                                         headers={"Authorization": "Bearer anything"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        assert "NEWSWIRE_STATUS_TOKEN" in refused.value.read().decode()
        page = urllib.request.urlopen(base + "/partners/acme", timeout=10).read().decode()
        assert "read-only" in page and "Redrive" not in page
    assert query(settings, "SELECT count(*) FROM deliveries WHERE status = 'dead'")[0][0] == 1


@on_both_stores  # the hold is read from the webhook state
def test_the_page_and_metrics_show_how_a_partner_takes_deliveries_and_what_holds_a_strict_line(
        partner_with_a_dead_delivery):
    """acme's delivery 1 is dead: once acme is strict it holds the line, and the overview, the
    partner's page and /metrics say so with the way out; in pull mode nothing holds it."""
    settings, _ = partner_with_a_dead_delivery

    def pages() -> tuple[str, str, str]:
        with serving(make_app(settings)) as base:
            return tuple(urllib.request.urlopen(base + path, timeout=10).read().decode()
                         for path in ("/", "/partners/acme", "/metrics"))

    overview, partner, metrics = pages()
    assert re.search(r'<td class="takes">push</td>', overview)
    assert "in order per article" in partner and 'id="hold"' not in partner
    assert 'newswire_partner_held{partner="acme"} 0.0' in metrics

    cli(settings, "partners", "update", "acme", "--ordering", "strict")
    overview, partner, metrics = pages()
    assert re.search(r'<td class="takes bad">push, strict, held at 1</td>', overview)
    assert "strict order: one at a time by number" in partner
    hold = re.search(r'<dd id="hold" class="bad">([^<]*)</dd>', partner)
    assert hold and "seq 1 is dead (HTTP 500" in hold.group(1) and "--through 1" in hold.group(1)
    assert 'newswire_partner_held{partner="acme"} 1.0' in metrics

    cli(settings, "partners", "update", "acme", "--mode", "pull")  # a pull hands a dead delivery out too
    overview, partner, metrics = pages()
    assert re.search(r'<td class="takes">pull, strict</td>', overview)
    assert "pulled (GET /v1/changes)" in partner and 'id="hold"' not in partner
    assert 'newswire_partner_held{partner="acme"} 0.0' in metrics
