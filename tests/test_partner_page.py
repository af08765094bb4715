"""The partner page in headless Chromium: sign-in with a token, a session cookie the page's
scripts cannot read and other sites cannot send, forms with a CSRF token, and the partner's
actions over the same operations as the API."""

from __future__ import annotations

import random

from playwright.sync_api import expect, sync_playwright

from newswire import corpus
from newswire.consumers.partner_api import tokens
from newswire.consumers.partner_api.app import create_app
from newswire.consumers.webhooks import pusher, signing, store
from tests.http_server import serving
from tests.partner_api_support import issue
from tests.test_status_page import CHROMIUM, CHROMIUM_ARGS
from tests.webhooks_support import PartnerServer, config, publish, query, register, wait_for


def test_a_partner_works_from_its_page_in_a_real_browser(settings):
    acme = PartnerServer([signing.new_secret()]).start()
    register(settings, "acme", acme)
    publish(settings, [corpus.story(random.Random(70 + i), f"pg-{i}") for i in range(2)])
    with pusher.Running(settings, config()):
        wait_for(lambda: len(acme.ok()) == 2, "two stories delivered")
    issued = issue(settings, "acme")
    try:
        with serving(create_app(settings, webhook_config=config())) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()
                page.goto(base + "/")
                expect(page).to_have_url(base + "/login")
                page.get_by_label("partner token").fill("nwp_" + "x" * 43)
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator("#login-failed")).to_be_visible()
                page.get_by_label("partner token").fill(issued.secret)
                page.get_by_role("button", name="Sign in").click()
                expect(page).to_have_url(base + "/")
                (cookie,) = page.context.cookies()
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and issued.secret not in cookie["value"]
                expect(page.locator("#last-seq")).to_have_text("2")
                expect(page.locator("#deliveries tbody tr")).to_have_count(2)
                expect(page.locator("#deliveries tbody tr").first).to_contain_text("delivered 200")

                forged = page.request.post(base + "/actions/pause", form={"reason": "forged"})
                assert forged.status == 403 and "CSRF" in forged.text()
                # another site's form: refused by its Origin, also a sign-in with the other site's own token
                for path, form in (("/actions/pause", {}), ("/login", {"token": issued.secret})):
                    cross = page.request.post(base + path, form=form, headers={"Origin": "https://evil.example"})
                    assert cross.status == 403 and "Origin" in cross.text()
                assert query(settings, "SELECT enabled FROM partners")[0][0] == 1

                page.get_by_role("button", name="Pause pushes").click()
                expect(page.locator("#state")).to_have_text("paused")
                page.get_by_role("button", name="Resume pushes").click()
                expect(page.locator("#state")).to_have_text("enabled")
                expect(page.locator(".messages")).to_contain_text("pushes resumed")

                page.get_by_label("sequence numbers").fill("2")
                page.get_by_role("button", name="Resend range").click()
                expect(page.locator(".messages")).to_contain_text("resending 1 deliveries (2-2)")
                expect(page.locator("#gap-list tbody tr").filter(has_text="pending")).to_have_count(1)

                page.get_by_role("button", name="Send a test event").click()
                expect(page.locator(".messages")).to_contain_text("delivered (HTTP 200")
                assert acme.snapshot()[-1].envelope["type"] == "newswire.test"

                page.get_by_role("button", name="Rotate signing secret").click()
                expect(page.locator("#new-secret")).to_contain_text("whsec_")
                expect(page.locator("body")).to_contain_text("previous secret sign every delivery until 20")
                page.get_by_role("link", name="Back").click()
                expect(page.locator("#secrets")).to_contain_text("2 (a rotation is on: the previous one signs until 20")
                page.get_by_role("button", name="End rotation").click()
                expect(page.locator("#secrets")).to_have_text("1")

                page.get_by_label("backfill since").fill("400d")
                page.get_by_role("button", name="Count backfill (dry run)").click()
                expect(page.locator(".messages")).to_contain_text("since: at most 30 days back")
                page.get_by_label("backfill since").fill("1h")
                page.get_by_role("button", name="Count backfill (dry run)").click()
                # story 1 again (re-sent); story 2 is still pending from the resend (no pusher runs)
                expect(page.locator("#count")).to_contain_text("would queue 1 deliveries", timeout=60_000)
                page.get_by_role("link", name="Back").click()

                audited = page.locator("#audit tbody tr")
                expect(audited.filter(has_text="POST /actions/{action}")).not_to_have_count(0)
                expect(audited.filter(has_text="POST /login").first).to_contain_text("303")

                db = store.connect(settings)  # a revoked token signs its sessions out
                tokens.revoke(db, issued.token.id)
                db.close()
                page.reload()
                expect(page).to_have_url(base + "/login")
                after = page.request.post(base + "/actions/pause", form={"csrf": "x"})
                assert after.status == 401
            finally:
                browser.close()
    finally:
        acme.stop()
