"""deploy/docker-compose.yml and the Dockerfile, checked without a Docker engine (this project's
machines have none): the compose file is valid against the Compose Specification's JSON schema
(the copy check-jsonschema vendors, from compose-spec/compose-spec's schema/compose-spec.json),
holds every service of ``newswire run`` with the same command, one image built from the
project's Dockerfile, a named volume where each state lives, and a health check on the
endpoint the service really serves; Prometheus scrapes what the services expose."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import check_jsonschema
import jsonschema
import pytest
import yaml

from newswire.run import Ports, metrics_ports, services
from newswire.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
#: the services of the file that are not newswire's own
THIRD_PARTY = {"kafka", "prometheus", "grafana", "postgres"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(document: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return [f"{e.json_path}: {e.message}" for e in validator(schema).iter_errors(document)]


def test_the_file_is_valid_against_the_compose_spec_schema(compose):
    assert schema_errors(compose) == []


def test_the_schema_check_bites(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["ingest"]["healthchek"] = broken["services"]["ingest"].pop("healthcheck")
    broken["services"]["feeds"]["ports"] = "8081"
    errors = schema_errors(broken)
    assert any("healthchek" in e for e in errors) and any("$.services.feeds.ports" in e for e in errors)


def verbs(argv: list[str]) -> list[str]:
    """The subcommand words of a newswire command line (up to its first option)."""
    words = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    return words


def test_every_service_of_newswire_run_is_there_with_its_command(compose):
    ran = {s.name: s.argv[s.argv.index("newswire.cli") + 1:] for s in services(Settings(), Ports(), "t")}
    assert set(ran) <= set(compose["services"])
    for name, argv in ran.items():
        assert verbs(compose["services"][name]["command"]) == verbs(argv), name


def newswire_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if n not in THIRD_PARTY}


def test_one_image_built_from_the_projects_dockerfile(compose):
    for name, service in newswire_services(compose).items():
        assert service["image"] == "newswire:latest", name
        build = service["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT and build["dockerfile"] == DOCKERFILE.name
    text = DOCKERFILE.read_text()
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"
    assert 'ENTRYPOINT ["newswire"]' in text and "pip install ." in text


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_each_state_is_on_a_named_volume(compose):
    declared = set(compose["volumes"])
    mounts = {name: {m.split(":")[1]: m.split(":")[0] for m in s.get("volumes", [])}
              for name, s in compose["services"].items()}
    for name, by_path in mounts.items():
        for path, source in by_path.items():
            assert source in declared or source.startswith("./"), (name, source)
    home = compose["x-newswire"]["environment"]["NEWSWIRE_HOME"]
    services_ = compose["services"]
    assert mounts["kafka"][services_["kafka"]["environment"]["KAFKA_LOG_DIRS"]] == "kafka-data"
    assert mounts["feeds"][f"{home}/feeds"] == "feeds-view"  # view.sqlite3
    assert mounts["webhooks"][home] == "webhook-state"  # webhooks.sqlite3 and its lock
    assert mounts["status"][home] == "webhook-state"  # reads it, its actions write it
    assert mounts["partner-api"][home] == "webhook-state"  # tokens, audit, and the partners' actions
    archive_root = compose["x-newswire"]["environment"]["NEWSWIRE_ARCHIVE_ROOT"]
    assert mounts["archive"][archive_root] == "archive" and mounts["status"][archive_root] == "archive"
    assert mounts["newsml-drop"][option(services_["newsml-drop"]["command"], "--dir")] == "newsml-drop"


def checked_url(service: dict) -> str:
    (url,) = re.findall(r"http://127\.0\.0\.1:\d+/\S*?(?=')", " ".join(service["healthcheck"]["test"]))
    return url


def test_every_long_running_service_has_a_health_check_on_what_it_serves(compose):
    for name, service in newswire_services(compose).items():
        if service.get("restart") == "no":
            continue  # one-shot set-up
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        if name == "demo-partner":
            continue  # it answers POSTs only: its port is checked
        url, command = checked_url(service), service["command"]
        port = option(command, "--port") or service["environment"]["NEWSWIRE_METRICS_PORT"]
        assert url.startswith(f"http://127.0.0.1:{port}/"), name
    expected = {"ingest": "/readyz", "feeds": "/health", "status": "/healthz", "partner-api": "/healthz",
                "newsml-drop": "/metrics",
                "webhooks": "/metrics", "archive": "/metrics"}
    for name, path in expected.items():
        assert checked_url(compose["services"][name]).endswith(path), name


def test_prometheus_scrapes_every_service_where_it_listens(compose):
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    services_ = compose["services"]
    listening = {f"{n}:{option(s['command'], '--port')}" for n, s in services_.items() if n in ("status", "ingest")}
    listening |= {f"{n}:{services_[n]['environment']['NEWSWIRE_METRICS_PORT']}" for n in metrics_ports(Ports())}
    assert targets == listening
    # the services' metrics ports are the ones `newswire run` gives them
    assert {n: int(services_[n]["environment"]["NEWSWIRE_METRICS_PORT"]) for n in metrics_ports(Ports())} \
        == metrics_ports(Ports())
