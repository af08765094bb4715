"""Settings of a newswire installation, from the environment.

Every name, port and size an operator may need to change is here, read from
``NEWSWIRE_*`` environment variables with the defaults below, so that one
broker, one set of topic names and one state directory serve every command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"NEWSWIRE_{name}", default)


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
    #: the agency that provides the stories, when an article does not say (none until configured)
    provider: str | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        topics = Topics(
            articles=_env("TOPIC_ARTICLES", Topics.articles),
            articles_partitions=int(_env("ARTICLES_PARTITIONS", str(Topics.articles_partitions))),
            dead_letter=_env("TOPIC_DEAD_LETTER", Topics.dead_letter),
            dead_letter_partitions=int(
                _env("DEAD_LETTER_PARTITIONS", str(Topics.dead_letter_partitions))
            ),
        )
        return cls(
            bootstrap_servers=_env("BOOTSTRAP", cls.bootstrap_servers),
            home=Path(_env("HOME", str(_default_home()))),
            cache=Path(_env("CACHE", str(_default_cache()))),
            topics=topics,
            replication_factor=int(_env("REPLICATION_FACTOR", str(cls.replication_factor))),
            producer_timeout_s=float(_env("PRODUCER_TIMEOUT", str(cls.producer_timeout_s))),
            provider=_env("PROVIDER", "").strip() or None,
        )

    def with_bootstrap(self, bootstrap_servers: str) -> "Settings":
        return replace(self, bootstrap_servers=bootstrap_servers)
