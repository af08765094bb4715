"""Shared fixtures: one real Kafka broker for the whole test session, fresh topics per test;
one real PostgreSQL server for the whole session, a fresh database per test that asks.

The broker is started by the same code as ``newswire kafka up`` (newswire.broker), on free
ports and in a temporary state directory, so a developer's own broker is not disturbed.
``deploy/dev.sh test`` runs the suite in parallel worker processes (pytest-xdist): each worker is
a session of its own, with its own broker and PostgreSQL. One broker shared by the workers would
mix their tests in the same consumer groups: tests that run the services with their default
group ids (``newswire-archive``, …; the feeds, drop folder and archive tests give theirs a group
of the test's own, ``tests.replay_support.own_group``), and a static member's instance id
(``newswire-archive-1``) started by one worker would fence the other's.
If it cannot start, every test that needs it errors with the broker's own log. PostgreSQL
likewise (tests/postgres_server.py): Debian's server in a temporary cluster on a free port,
run as the ``postgres`` user; if it cannot start, the tests on that store error with its log.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from newswire import logs, topics
from newswire.broker import LocalBroker, ensure_jars, free_ports
from newswire.config import Settings, Topics
from tests.postgres_server import LocalPostgres

#: the test installation's id authority (an operator sets their own; a fresh installation has none),
#: for every Settings.from_env() of the tests and the commands they start: the renderers' example
#: default, so that ids rendered by a test and by a service agree
os.environ.setdefault("NEWSWIRE_ID_AUTHORITY", "newswire.example.org")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
STANDARDS = SHARED / "standards"
FIXTURES = SHARED / "fixtures"


@pytest.fixture(autouse=True)
def structured_logs() -> None:
    """Every test starts with the same log set-up: a CLI run in-process (CliRunner) configures
    logging for the whole process (level, stream), which must not leak into the next test."""
    logs.configure("INFO", json=True)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> LocalBroker:
    """A real single-node KRaft broker, started once per test session (per worker)."""
    base = Settings.from_env()
    _jars_fetched_once(base.cache)
    port, controller_port = free_ports(2)
    broker = LocalBroker(state_dir=tmp_path_factory.mktemp("kafka"), cache=base.cache,
                         port=port, controller_port=controller_port)
    broker.start(timeout_s=120)
    yield broker
    broker.stop()


def _jars_fetched_once(cache: Path) -> None:
    """The broker's jars, fetched by one worker while the others wait (on a fresh machine, where
    they are not in the cache yet, parallel Maven runs would write the same files)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "jars.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_jars(cache)


@pytest.fixture(scope="session")
def postgres_server() -> LocalPostgres:
    """A real PostgreSQL server, started once per test session (never skipped: it must start)."""
    server = LocalPostgres().start()
    yield server
    server.stop()


#: the two stores of the webhook state; a module whose tests run on both overrides ``settings``
#: with :func:`on_each_store`
STORES = ("sqlite", "postgresql")


#: runs one test on both stores (a module whose tests all need both uses :func:`on_each_store`)
on_both_stores = pytest.mark.parametrize("settings", STORES, indirect=True)


def _on_store(request: pytest.FixtureRequest, settings: Settings, name: str) -> Settings:
    """``settings`` with the webhook state on store ``name``: the SQLite file under home, or a
    new database on the session's PostgreSQL server."""
    if name == "sqlite":
        return settings
    return replace(settings, state_url=request.getfixturevalue("postgres_server").new_database())


def on_each_store():
    """A ``settings`` fixture for a test module, parametrised by store (see :func:`_on_store`)."""
    @pytest.fixture(params=STORES, name="settings")
    def settings_on_store(request: pytest.FixtureRequest, settings: Settings) -> Settings:
        return _on_store(request, settings, request.param)
    return settings_on_store


@pytest.fixture
def settings(request: pytest.FixtureRequest, kafka_broker: LocalBroker, tmp_path: Path) -> Settings:
    """Settings pointing at the session broker, with this test's own topics (created) and home;
    the webhook state on SQLite, or on the store a test's :data:`on_both_stores` names."""
    return _on_store(request, _isolated_settings(kafka_broker, tmp_path / "home"), getattr(request, "param", "sqlite"))


@pytest.fixture(scope="module")
def module_settings(kafka_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Like ``settings``, shared by the tests of one module (a suite that publishes once and checks many)."""
    return _isolated_settings(kafka_broker, tmp_path_factory.mktemp("module") / "home")


def _isolated_settings(kafka_broker: LocalBroker, home: Path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    own = Settings.from_env()
    own = replace(
        own,
        bootstrap_servers=kafka_broker.bootstrap,
        home=home,
        topics=Topics(articles=f"articles-{suffix}", articles_partitions=3,
                      dead_letter=f"articles-{suffix}.dlq", dead_letter_partitions=1),
        producer_timeout_s=10.0,
        provider="Newswire Test Agency",  # configured as an operator does: a fresh installation names none
    )
    topics.ensure(own)
    return own
