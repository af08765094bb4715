"""Settings: every bad NEWSWIRE_* variable is named with its problem; the id authority is a
validated setting the renderers are given (never read by them); to_env() gives the settings
back to the processes a command starts. Pure, and in-process commands that stop before Kafka."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from newswire.cli import main
from newswire.config import ConfigError, Settings, Topics, consumer_group
from newswire.consumers.archive import archiver
from newswire.consumers.feeds import consumer as feeds_consumer
from newswire.consumers.feeds import drop_folder
from newswire.formats import atom, newsml, ninjs, rss
from newswire.run import DEMO_AUTHORITY, DEMO_PROVIDER, _demo_variables
from tests.corpus_cases import NOW, cases
from tests.official_schemas import newsml_schema, ninjs_validator

N = "{http://iptc.org/std/nar/2006-10-01/}"
AUTHORITY = "news.agency.example"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No NEWSWIRE_* variable but a home of its own."""
    for name in [n for n in os.environ if n.startswith("NEWSWIRE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSWIRE_HOME", str(tmp_path / "home"))
    return monkeypatch


@pytest.mark.parametrize("name, value, problem", [
    ("ARTICLES_PARTITIONS", "six", "'six' is not a whole number"),
    ("ARTICLES_PARTITIONS", "0", "must be at least 1, got '0'"),
    ("DEAD_LETTER_PARTITIONS", "1.5", "'1.5' is not a whole number"),
    ("REPLICATION_FACTOR", "-1", "must be at least 1, got '-1'"),
    ("PRODUCER_TIMEOUT", "soon", "'soon' is not a number"),
    ("PRODUCER_TIMEOUT", "0", "must be at least 0.001"),
    ("TOPIC_WAIT", "-1", "must be at least 0"),
    ("ID_AUTHORITY", "localhost", "is not a DNS name"),
    ("ID_AUTHORITY", "news agency.example", "is not a DNS name"),
    ("ID_AUTHORITY", "192.0.2.1", "is not a DNS name"),
    ("ID_AUTHORITY", "-news.example", "is not a DNS name"),
    ("ID_AUTHORITY", "news_wire.example", "is not a DNS name"),
    ("ID_AUTHORITY", "news.example/ids", "is not a DNS name"),
    ("ID_AUTHORITY", "x" * 64 + ".example", "is not a DNS name"),
    ("STATE_URL", "mysql://db.example/newswire", "is not a PostgreSQL URL"),
    ("STATE_URL", "/var/lib/newswire/state.sqlite3", "is not a PostgreSQL URL"),
    ("STATE_URL", "postgresql://db.example:5432", "names no database"),
    ("STATE_URL", "postgresql://u:hunter2@/newswire", "names no host"),
])
def test_a_bad_variable_is_named_with_its_problem(clean_env, name, value, problem):
    clean_env.setenv(f"NEWSWIRE_{name}", value)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert str(caught.value).startswith(f"NEWSWIRE_{name}: ") and problem in str(caught.value)


def test_a_bad_variable_ends_a_command_in_one_line(clean_env):
    clean_env.setenv("NEWSWIRE_ARTICLES_PARTITIONS", "six")
    result = CliRunner().invoke(main, ["feeds", "serve", "--port", "1"])
    assert result.exit_code == 1
    assert result.output.splitlines() == ["Error: NEWSWIRE_ARTICLES_PARTITIONS: 'six' is not a whole number"]


def test_the_state_url_selects_postgresql_and_its_password_is_never_shown(clean_env):
    assert Settings.from_env().state_url is None  # the SQLite file under the home
    url = "postgresql://newswire:hunter2@db.example:5432/newswire"
    clean_env.setenv("NEWSWIRE_STATE_URL", f" {url} ")
    settings = Settings.from_env()
    assert settings.state_url == url and settings.to_env()["NEWSWIRE_STATE_URL"] == url
    assert settings.state_shown == "postgresql://newswire:***@db.example:5432/newswire"
    clean_env.setenv("NEWSWIRE_STATE_URL", "postgresql://u:hunter2@/newswire")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert "hunter2" not in str(caught.value)


def test_the_id_authority_is_a_dns_name_kept_in_lower_case(clean_env):
    assert Settings.from_env().id_authority is None
    clean_env.setenv("NEWSWIRE_ID_AUTHORITY", " News.Agency.Example ")
    assert Settings.from_env().id_authority == AUTHORITY
    assert Settings.from_env().authority() == AUTHORITY


@pytest.mark.parametrize("args", [["feeds", "serve", "--port", "1"], ["newsml", "drop", "--dir", "{home}/drop"]])
def test_what_renders_refuses_to_start_without_an_id_authority(clean_env, tmp_path, args):
    args = [a.format(home=tmp_path) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: NEWSWIRE_ID_AUTHORITY is not set: it is the domain that mints every item id")
    assert "must not change for the life of the feeds" in line


def test_to_env_gives_the_settings_back(clean_env, tmp_path):
    settings = Settings(bootstrap_servers="127.0.0.1:19092,127.0.0.1:19093", home=tmp_path / "h", cache=tmp_path / "c",
                        topics=Topics("a-1", 4, "a-1.dlq", 2), replication_factor=3, producer_timeout_s=2.5, topic_wait_s=0.5,
                        provider="Agence Exemple", id_authority=AUTHORITY,
                        state_url="postgresql://newswire@db.example/newswire")
    for name, value in settings.to_env().items():
        clean_env.setenv(name, value)
    assert Settings.from_env() == settings
    bare = Settings(home=tmp_path / "h").to_env()
    assert "NEWSWIRE_PROVIDER" not in bare and "NEWSWIRE_ID_AUTHORITY" not in bare


@pytest.mark.parametrize("service, fixed, default", [("FEEDS", feeds_consumer.GROUP, "newswire-feeds"),
                                                    ("NEWSML", drop_folder.GROUP, "newswire-newsml"),
                                                    ("ARCHIVE", archiver.GROUP, "newswire-archive")])
def test_a_service_keeps_its_fixed_group_unless_a_variable_names_another(clean_env, service, fixed, default):
    assert fixed == default and consumer_group(service, fixed) == default
    clean_env.setenv(f"NEWSWIRE_{service}_GROUP", " ")
    assert consumer_group(service, fixed) == default
    clean_env.setenv(f"NEWSWIRE_{service}_GROUP", "feeds-articles-1234")
    assert consumer_group(service, fixed) == "feeds-articles-1234"
    if service == "ARCHIVE":
        assert archiver.group() == "feeds-articles-1234"


def test_newswire_run_gives_every_service_the_demo_agency_and_id_authority(tmp_path):
    env = _demo_variables(Settings(home=tmp_path, bootstrap_servers="127.0.0.1:29092"))
    assert env["NEWSWIRE_ID_AUTHORITY"] == DEMO_AUTHORITY and env["NEWSWIRE_PROVIDER"] == DEMO_PROVIDER
    assert env["NEWSWIRE_BOOTSTRAP"] == "127.0.0.1:29092" and env["NEWSWIRE_HOME"] == str(tmp_path)


def test_every_renderer_mints_ids_with_the_authority_it_is_given():
    event = cases()["pictures"]
    urn = f"urn:newsml:{AUTHORITY}:20261120:case-pictures"
    message = etree.fromstring(newsml.news_message([event], sent=NOW, authority=AUTHORITY))
    newsml_schema().assertValid(message)
    assert message.findtext(f"{N}header/{N}sender") == AUTHORITY
    items = list(message.iter(f"{N}newsItem"))
    assert items[0].get("guid") == urn and all(i.get("guid").startswith(urn) for i in items)
    schemes = [s.get("uri") for s in items[0].iter(f"{N}scheme")]
    assert schemes and all(uri.startswith(f"https://{AUTHORITY}/cv/") for uri in schemes)
    assert etree.fromstring(newsml.news_item_bytes(event, authority=AUTHORITY)).get("guid") == urn
    obj = ninjs.item(event, authority=AUTHORITY)
    ninjs_validator().validate(obj)
    assert obj["uri"] == urn and ninjs.items([event], authority=AUTHORITY) == [obj]
    assert etree.fromstring(rss.item_bytes(event, authority=AUTHORITY)).findtext("guid") == urn
    feed = etree.fromstring(atom.feed([event], title="t", link="https://x.example/", self_url="https://x.example/a",
                                      feed_id="https://x.example/a", updated=NOW, authority=AUTHORITY))
    assert feed.findtext("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}id") == urn
    assert "newswire.example.org" not in json.dumps(obj) + etree.tostring(message).decode()
