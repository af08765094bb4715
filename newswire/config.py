"""Settings of a newswire installation, from the environment.

Every name, port and size an operator may need to change is here, read from
``NEWSWIRE_*`` environment variables with the defaults below, so that one
broker, one set of topic names and one state directory serve every command.
A bad value is a :class:`ConfigError` naming the variable and the problem;
:meth:`Settings.to_env` gives the variables back (for the commands a command starts).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from newswire.errors import Refused

#: a DNS name: dot-separated labels of letters, digits and inner hyphens, a non-numeric last one
_DNS_NAME = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                       r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class ConfigError(Refused):
    """A ``NEWSWIRE_*`` variable is missing or wrong; the message names it (a command ends with it, exit 1)."""


def _env(name: str, default: str) -> str:
    return os.environ.get(f"NEWSWIRE_{name}", default)


def _number(name: str, default: float, kind: type = int, *, low: float = 1):
    """``NEWSWIRE_<name>`` as an int (or float) of at least ``low``."""
    text = _env(name, str(default))
    try:
        value = kind(text.strip())
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"NEWSWIRE_{name}: {text!r} is not {what}") from None
    if value < low:
        raise ConfigError(f"NEWSWIRE_{name}: must be at least {low:g}, got {text!r}")
    return value


def consumer_group(service: str, default: str) -> str:
    """A service's Kafka consumer group: ``NEWSWIRE_<service>_GROUP`` when set (tests give each
    test a group of its own), else the service's fixed ``default`` (README: Configuration)."""
    return _env(f"{service}_GROUP", "").strip() or default


def parse_id_authority(text: str) -> str:
    """A DNS name for the item ids (lower-cased); ConfigError otherwise."""
    name = text.strip().lower()
    if not _DNS_NAME.fullmatch(name):
        raise ConfigError(f"NEWSWIRE_ID_AUTHORITY: {text!r} is not a DNS name such as news.agency.example "
                          "(letters, digits and hyphens in two or more dot-separated labels)")
    return name


def parse_state_url(text: str) -> str:
    """A PostgreSQL connection URL (``postgresql://user:password@host:port/database``); ConfigError otherwise."""
    url = text.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"NEWSWIRE_STATE_URL: {_redacted(url)!r} is not a PostgreSQL URL such as "
                          "postgresql://newswire@db.example:5432/newswire (unset, the state is the SQLite file "
                          "webhooks.sqlite3 under NEWSWIRE_HOME)")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if not host and "host=" not in rest:
        raise ConfigError(f"NEWSWIRE_STATE_URL: {_redacted(url)!r} names no host")
    if "/" not in rest or not rest.split("/", 1)[1].split("?", 1)[0]:
        raise ConfigError(f"NEWSWIRE_STATE_URL: {_redacted(url)!r} names no database (…/newswire at the end)")
    return url


#: the least length of the cleaning seal's key (a secret of 128 bits or more)
MIN_CLEAN_KEY = 16


def parse_clean_key(text: str) -> str | None:
    """The cleaning seal's key, or None when unset; ConfigError when it is too short to be a secret."""
    key = text.strip()
    if not key:
        return None
    if len(key) < MIN_CLEAN_KEY:
        raise ConfigError(f"NEWSWIRE_CLEAN_KEY: {len(key)} characters is too short for a secret; give at least "
                          f"{MIN_CLEAN_KEY} (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
    return key


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "newswire"


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "newswire"


@dataclass(frozen=True)
class Topics:
    """Names and partition counts of the topics newswire uses."""

    articles: str = "articles"
    articles_partitions: int = 6
    dead_letter: str = "articles.dlq"
    dead_letter_partitions: int = 3


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    #: where the local broker keeps its data, logs and pid file, and consumers their state
    home: Path = field(default_factory=_default_home)
    #: where the broker's jars are fetched to (outside the repository)
    cache: Path = field(default_factory=_default_cache)
    topics: Topics = field(default_factory=Topics)
    #: replicas of every topic newswire creates (1 on a single node; 3 on a production cluster)
    replication_factor: int = 1
    #: ``acks`` and delivery timeout of every producer (all: the write is on every in-sync replica)
    producer_acks: str = "all"
    producer_timeout_s: float = 15.0
    #: how long a command that reads a topic's partitions asks again while the broker answers it
    #: has none (a new client's metadata may lag a just-created topic) before it says the topic is missing
    topic_wait_s: float = 15.0
    #: the agency that provides the stories, when an article does not say (none until configured)
    provider: str | None = None
    #: the domain that mints every item id (``urn:newsml:<it>:…``, RFC 3085 ProviderId); fixed
    #: for the life of the feeds, since changing it changes every id (none until configured)
    id_authority: str | None = None
    #: where the partner pusher's state lives: None = the SQLite file under ``home`` (one pusher
    #: process); a ``postgresql://`` URL = that PostgreSQL database (any number of pushers)
    state_url: str | None = None
    #: the key of the cleaning seal (:mod:`newswire.seal`), shared by the producers and every
    #: consumer: the producer seals the events it cleaned, a consumer skips cleaning them again
    #: only when the seal verifies (None: no seal made, every event cleaned by its consumer)
    clean_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings the ``NEWSWIRE_*`` variables give; ConfigError names a bad one."""
        topics = Topics(
            articles=_env("TOPIC_ARTICLES", Topics.articles),
            articles_partitions=_number("ARTICLES_PARTITIONS", Topics.articles_partitions),
            dead_letter=_env("TOPIC_DEAD_LETTER", Topics.dead_letter),
            dead_letter_partitions=_number("DEAD_LETTER_PARTITIONS", Topics.dead_letter_partitions),
        )
        authority = _env("ID_AUTHORITY", "")
        state_url = _env("STATE_URL", "")
        return cls(
            bootstrap_servers=_env("BOOTSTRAP", cls.bootstrap_servers),
            home=Path(_env("HOME", str(_default_home()))),
            cache=Path(_env("CACHE", str(_default_cache()))),
            topics=topics,
            replication_factor=_number("REPLICATION_FACTOR", cls.replication_factor),
            producer_timeout_s=_number("PRODUCER_TIMEOUT", cls.producer_timeout_s, float, low=0.001),
            topic_wait_s=_number("TOPIC_WAIT", cls.topic_wait_s, float, low=0.0),
            provider=_env("PROVIDER", "").strip() or None,
            id_authority=parse_id_authority(authority) if authority.strip() else None,
            state_url=parse_state_url(state_url) if state_url.strip() else None,
            clean_key=parse_clean_key(_env("CLEAN_KEY", "")),
        )

    def to_env(self) -> dict[str, str]:
        """The ``NEWSWIRE_*`` variables that make another newswire process use these settings
        (what :meth:`from_env` reads; the unset optional ones left out)."""
        t = self.topics
        env = {"NEWSWIRE_BOOTSTRAP": self.bootstrap_servers, "NEWSWIRE_HOME": str(self.home),
               "NEWSWIRE_CACHE": str(self.cache), "NEWSWIRE_TOPIC_ARTICLES": t.articles,
               "NEWSWIRE_ARTICLES_PARTITIONS": str(t.articles_partitions), "NEWSWIRE_TOPIC_DEAD_LETTER": t.dead_letter,
               "NEWSWIRE_DEAD_LETTER_PARTITIONS": str(t.dead_letter_partitions),
               "NEWSWIRE_REPLICATION_FACTOR": str(self.replication_factor),
               "NEWSWIRE_PRODUCER_TIMEOUT": repr(self.producer_timeout_s),
               "NEWSWIRE_TOPIC_WAIT": repr(self.topic_wait_s)}
        if self.provider:
            env["NEWSWIRE_PROVIDER"] = self.provider
        if self.id_authority:
            env["NEWSWIRE_ID_AUTHORITY"] = self.id_authority
        if self.state_url:
            env["NEWSWIRE_STATE_URL"] = self.state_url
        if self.clean_key:
            env["NEWSWIRE_CLEAN_KEY"] = self.clean_key
        return env

    def authority(self) -> str:
        """:attr:`id_authority`; ConfigError saying how to set it when it is not configured
        (what renders items needs it: feeds, drop folder, webhooks, replay, archive)."""
        if self.id_authority is None:
            raise ConfigError("NEWSWIRE_ID_AUTHORITY is not set: it is the domain that mints every item id "
                              "(urn:newsml:<domain>:...), e.g. news.agency.example, and must not change for the "
                              "life of the feeds")
        return self.id_authority

    @property
    def state_shown(self) -> str:
        """Where the webhook state is, for messages (a URL's password hidden)."""
        return _redacted(self.state_url) if self.state_url else str(self.home / "webhooks.sqlite3")

    def with_bootstrap(self, bootstrap_servers: str) -> "Settings":
        return replace(self, bootstrap_servers=bootstrap_servers)
