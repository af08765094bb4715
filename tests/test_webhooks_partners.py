"""The partner registry through the CLI, the SSRF guard at registration and at connect time,
secret rotation, subscriptions, embargoes and kills that follow a story, with the real broker
and real HTTP partners."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from newswire import corpus
from newswire.consumers.webhooks import pusher, ssrf, store
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import parse_cidrs
from newswire.consumers.webhooks.filters import Subscription
from newswire.consumers.webhooks.signing import new_secret
from tests.webhooks_support import PartnerServer, cli, config, publish, query, register, wait_for
from tests.conftest import on_each_store

#: these tests exercise the store: they run on SQLite and on PostgreSQL
settings = on_each_store()


def _story(article_id: str, **changes) -> dict:
    event = corpus.story(random.Random(article_id), article_id, body_bytes=500)
    event.update(changes)
    return event


def test_operators_manage_partners_with_the_cli(settings):
    allow = {"NEWSWIRE_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8"}
    added = cli(settings, "partners", "add", "acme", "--name", "ACME News", "--url", "http://127.0.0.1:9/in",
                "--format", "newsml", "--categories", "politics,conflict", "--max-urgency", "4",
                "--rate-limit", "20", env=allow).output
    assert "whsec_" in added and "categories=politics,conflict" in added and "max_urgency=4" in added
    cli(settings, "partners", "update", "acme", "--languages", "en,ar", "--categories", "", env=allow)
    shown = cli(settings, "partners", "show", "acme").output
    assert "categories=* languages=en,ar max_urgency=4" in shown and "rate_limit=20.0/s" in shown
    assert "application/vnd.iptc.g2.newsmessage+xml" in shown
    cli(settings, "partners", "disable", "acme", "--reason", "contract paused")
    assert "DISABLED (contract paused)" in cli(settings, "partners", "show", "acme").output
    cli(settings, "partners", "enable", "acme")
    assert "acme\tenabled\tnewsml" in cli(settings, "partners", "list").output
    rotated = cli(settings, "partners", "rotate-secret", "acme").output
    assert "both secrets sign" in rotated
    assert "old secret:" in cli(settings, "partners", "show", "acme").output
    cli(settings, "partners", "rotate-secret", "acme", "--drop-old")
    assert "old secret:" not in cli(settings, "partners", "show", "acme").output
    refused = cli(settings, "partners", "add", "evil", "--name", "E", "--url", "http://127.0.0.1:9/", ok=False)
    assert refused.exit_code == 1 and "127.0.0.1 is a loopback address" in refused.output
    bad = cli(settings, "partners", "add", "x", "--name", "X", "--url", "ftp://example.org/", ok=False)
    assert "scheme must be https" in bad.output
    dup = cli(settings, "partners", "add", "acme", "--name", "A", "--url", "http://127.0.0.1:9/", env=allow, ok=False)
    assert "already exists" in dup.output


@pytest.mark.parametrize("url, why", [
    ("http://10.0.0.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[::1]:8080/hook", "loopback"),
    ("https://localhost:8443/hook", "localhost resolves to"),
    ("http://[::ffff:10.1.2.3]/hook", "private"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://100.64.0.1/hook", "not a globally routable"),
])
def test_the_ssrf_guard_refuses_private_loopback_metadata_and_names_resolving_to_them(url, why):
    with pytest.raises(ssrf.EndpointRefused, match=why):
        ssrf.check_endpoint(url)


def test_the_allowlist_lets_loopback_in_and_public_addresses_pass():
    assert ssrf.check_endpoint("http://localhost:8090/", ssrf_allow := tuple(config().allow_cidrs))
    assert ssrf.refusal("93.184.215.14") is None
    assert ssrf.refusal("127.0.0.1", ssrf_allow) is None
    assert ssrf.refusal("10.0.0.1", ssrf_allow) == "10.0.0.1 is a private address"


METADATA_URLS = ["http://169.254.169.254/latest/meta-data/", "http://169.254.170.2/v2/credentials",
                 "http://[fd00:ec2::254]/latest/", "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/",
                 "http://[2002:a9fe:a9fe::1]/", "http://169.254.10.1/", "http://[fe80::1]/",
                 "http://2852039166/latest/meta-data/"]  # the last: 169.254.169.254 as one number, which resolves


@pytest.mark.parametrize("url", METADATA_URLS)
def test_cloud_metadata_and_link_local_are_refused_whatever_the_allowlist(url):
    allow_all = parse_cidrs("0.0.0.0/0,::/0")
    with pytest.raises(ssrf.EndpointRefused, match="never allowed"):
        ssrf.check_endpoint(url, allow_all)
    host = urlsplit(url).hostname

    async def resolve() -> None:
        await ssrf.GuardedResolver(allow_all).resolve(host, 80)
    if host.isdigit():  # not a literal to the HTTP client: its resolver (getaddrinfo) checks it at connect time
        with pytest.raises(ssrf.EndpointRefused, match="cloud metadata"):
            asyncio.run(resolve())
    else:  # a literal address: checked before each request
        with pytest.raises(ssrf.EndpointRefused, match="never allowed"):
            ssrf.check_literal(url, allow_all)


def test_partners_add_refuses_the_metadata_address_even_with_allow_cidrs_everything(settings):
    everything = {"NEWSWIRE_WEBHOOK_ALLOW_CIDRS": "0.0.0.0/0,::/0"}
    refused = cli(settings, "partners", "add", "meta", "--name", "M", "--url", "http://169.254.169.254/",
                  "--allow-cidrs", "0.0.0.0/0,::/0", env=everything, ok=False)
    assert refused.exit_code == 1 and "169.254.169.254 is a cloud metadata address" in refused.output
    assert "meta" not in cli(settings, "partners", "list").output
    cli(settings, "partners", "add", "ok", "--name", "OK", "--url", "http://127.0.0.1:9/", env=everything)
    moved = cli(settings, "partners", "update", "ok", "--url", "http://[fd00:ec2::254]/", env=everything, ok=False)
    assert moved.exit_code == 1 and "fd00:ec2::254 is a cloud metadata address" in moved.output


def test_the_ssrf_guard_also_checks_the_address_connected_to(settings):
    """Registered while allowed, pushed without the allowlist: refused at connect time, nothing sent."""
    by_name = PartnerServer([new_secret()]).start()
    by_ip = PartnerServer([new_secret()]).start()
    register(settings, "by-name", by_name)
    register(settings, "by-ip", by_ip)
    db = store.connect(settings)
    registry.update(db, "by-name", url=by_name.url.replace("127.0.0.1", "localhost"), allow=config().allow_cidrs)
    db.close()
    try:
        with pusher.Running(settings, config(allow_cidrs=(), schedule=(0, 0.05))):
            publish(settings, [_story("s-1")])
            wait_for(lambda: len(query(settings, "SELECT 1 FROM deliveries WHERE status = 'dead'")) == 2,
                     "both refused until dead")
    finally:
        by_name.stop()
        by_ip.stop()
    assert by_name.snapshot() == [] and by_ip.snapshot() == []
    errors = dict(query(settings, "SELECT partner_id, error FROM attempts WHERE outcome = 'dead'"))
    assert "SSRF guard" in errors["by-name"] and "localhost resolves to 127.0.0.1" in errors["by-name"]
    assert "SSRF guard" in errors["by-ip"] and "127.0.0.1 is a loopback address" in errors["by-ip"]


def test_during_a_rotation_both_secrets_sign_and_after_drop_old_only_the_new_one(settings):
    old = new_secret()
    server = PartnerServer([old]).start()
    register(settings, "rot", server)
    db = store.connect(settings)

    def push(article_id: str):
        with pusher.Running(settings, config()):
            publish(settings, [_story(article_id)])
            wait_for(lambda: any(r.article[0] == article_id for r in server.ok()), article_id)
        return next(r for r in server.snapshot() if r.article[0] == article_id)
    try:
        before = push("rot-1")
        new = registry.rotate_secret(db, "rot").secrets[0]
        during = push("rot-2")
        registry.rotate_secret(db, "rot", drop_old=True)
        after = push("rot-3")
    finally:
        db.close()
        server.stop()
    assert len(before.headers["webhook-signature"].split()) == 1
    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(during.body, during.headers)
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)
    assert before.verified and during.verified
    assert len(server.snapshot()) == 3  # a clean stop leaves nothing to send again


def test_subscriptions_decide_who_gets_what_and_embargoes_wait_for_the_unentitled(settings):
    servers = {name: PartnerServer([new_secret()]).start() for name in ("politics", "arabic", "flash", "all")}
    register(settings, "politics", servers["politics"], subscription=Subscription(categories=("politics",)))
    register(settings, "arabic", servers["arabic"], subscription=Subscription(languages=("ar",)))
    register(settings, "flash", servers["flash"], subscription=Subscription(max_urgency=2, embargoed=True))
    register(settings, "all", servers["all"])
    try:
        with pusher.Running(settings, config()):
            publish(settings, [_story("p-en", categories=["politics"], language="en", urgency=5)])
            wait_for(lambda: len(servers["all"].ok()) == 1, "the pusher consuming")
            embargo = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=5)
            publish(settings, [_story("s-ar", categories=["sport"], language="ar", urgency=5),
                               _story("f-fr", categories=["economy"], language="fr", urgency=1,
                                      embargo_until=embargo)])
            wait_for(lambda: len(servers["all"].ok()) == 3, "the unfiltered partner's 3, the last after the embargo")
            wait_for(lambda: all(len(servers[n].ok()) == 1 for n in ("politics", "arabic", "flash")), "one each")
    finally:
        for server in servers.values():
            server.stop()
    got = {name: [r.article[0] for r in server.snapshot()] for name, server in servers.items()}
    assert got["politics"] == ["p-en"] and got["arabic"] == ["s-ar"] and got["flash"] == ["f-fr"]
    assert sorted(got["all"]) == ["f-fr", "p-en", "s-ar"]
    embargoed_at_all = next(r for r in servers["all"].snapshot() if r.article[0] == "f-fr")
    assert embargoed_at_all.at >= embargo.timestamp()  # not entitled: held until the embargo lifted
    due = dict(query(settings, "SELECT partner_id, next_attempt_at - created_at FROM deliveries"
                               " WHERE article_id = 'f-fr'"))
    assert due["flash"] <= 0 < due["all"]  # entitled: due when queued; the others: at the embargo


def test_a_kill_reaches_a_partner_that_had_the_story_even_after_a_filter_change(settings):
    had_it = PartnerServer([new_secret()]).start()
    never = PartnerServer([new_secret()]).start()
    register(settings, "had-it", had_it, subscription=Subscription(categories=("politics",)))
    register(settings, "never", never, subscription=Subscription(categories=("sport",)))
    story = _story("kill-1", categories=["politics"])
    try:
        with pusher.Running(settings, config()):
            publish(settings, [story])
            wait_for(lambda: len(had_it.ok()) == 1, "the story")
        cli(settings, "partners", "update", "had-it", "--categories", "sport")
        correction = corpus.next_version(story, "corrected")
        update = corpus.next_version(correction, "updated")
        kill = corpus.next_version(update, "killed")
        with pusher.Running(settings, config()):
            publish(settings, [correction, update, kill, _story("pol-2", categories=["politics"])])
            wait_for(lambda: len(had_it.ok()) == 3, "the correction and the kill")
            wait_for(lambda: query(settings, "SELECT count(*) FROM deliveries")[0][0] == 3, "nothing else queued")
    finally:
        had_it.stop()
        never.stop()
    assert [r.article for r in had_it.snapshot()] == [("kill-1", 1, "published"), ("kill-1", 2, "corrected"),
                                                       ("kill-1", 4, "killed")]
    assert never.snapshot() == []
    report = cli(settings, "deliveries", "kills").output
    assert "had-it\tkill-1\t4\t3\tyes\tdelivered" in report and "1 kill deliveries, 0 not delivered" in report
    listed = cli(settings, "deliveries", "list", "--partner", "had-it", "--status", "delivered", "--since", "1h").output
    assert len(listed.strip().splitlines()) == 4 and "\tkill-1\t4\t3\t" in listed
    assert len(cli(settings, "deliveries", "list", "--status", "failed", "--since", "1h").output.splitlines()) == 1
