"""``newswire``: the one command operators run. ``newswire --help`` lists everything."""

from __future__ import annotations

import errno
import importlib
import io
import os
import sys

import click
from kafka.errors import KafkaError

from newswire import broker as local_broker
from newswire import bus, logs, metrics, topics
from newswire.config import Settings
from newswire.errors import Refused
from newswire.rows import emit, json_option


#: exit status of any command that could not reach Kafka (or that Kafka refused); `publish` uses it too
EXIT_KAFKA = 3
#: exit status of a command whose reader went away (`newswire … | head -1`): 128 + SIGPIPE, as a shell
#: reports a tool that the signal ended
EXIT_BROKEN_PIPE = 128 + 13


def _quiet_broken_pipe() -> None:
    """End the command without a word when what reads its output went away: the rest of what it
    prints, and Python's flush at exit, go to /dev/null instead of failing again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (click's test runner)
        pass
    finally:
        os.close(devnull)


class _Newswire(click.Group):
    """The root command: a Kafka client error (or a missing topic) that no command handled ends in
    one line naming the broker and what to check (kafka-python's own lines are quiet: newswire.logs),
    exit 3; a service whose port another process holds, or a :class:`Refused` state, ends in one
    line, exit 1; output whose reader went away (``| head``) ends it quietly, exit 141."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: command name -> "module:attribute" of a command imported when it is first asked for
        self.lazy: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_broken_pipe()
            ctx.exit(EXIT_BROKEN_PIPE)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise click.ClickException(f"cannot listen: {exc.strerror or exc}") from exc
        except Refused as exc:
            raise click.ClickException(str(exc)) from exc
        except KafkaError as exc:
            click.echo(f"error: {bus.kafka_problem(ctx.obj or Settings.from_env(), exc)}", err=True)
            ctx.exit(EXIT_KAFKA)
        except bus.TopicMissing as exc:
            settings = ctx.obj or Settings.from_env()
            click.echo(f"error: Kafka at {settings.bootstrap_servers}: {exc}", err=True)
            ctx.exit(EXIT_KAFKA)


@click.group(cls=_Newswire, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--bootstrap", envvar="NEWSWIRE_BOOTSTRAP", help="Kafka bootstrap servers (default 127.0.0.1:9092).")
@click.option("--log-level", default="INFO", show_default=True, envvar="NEWSWIRE_LOG_LEVEL")
@click.option("--log-json/--log-console", default=None, help="Log format (default: JSON unless stderr is a terminal).")
@click.option("--kafka-log-level", default="CRITICAL", show_default=True, envvar="NEWSWIRE_KAFKA_LOG_LEVEL",
              help="Level from which kafka-python's own lines are logged (newswire says itself when Kafka is away).")
@click.option("--metrics-port", type=int, envvar="NEWSWIRE_METRICS_PORT", default=None,
              help="Serve this process's Prometheus metrics on METRICS_HOST:PORT/metrics.")
@click.option("--metrics-host", envvar="NEWSWIRE_METRICS_HOST", default="127.0.0.1", show_default=True,
              help="The address the metrics listen on (0.0.0.0 in a container, for Prometheus to reach).")
@click.pass_context
def main(ctx: click.Context, bootstrap: str | None, log_level: str, log_json: bool | None, kafka_log_level: str,
         metrics_port: int | None, metrics_host: str) -> None:
    """newswire: articles as Avro events on Kafka, turned into wire feeds, partner pushes and an archive."""
    logs.configure(log_level.upper(), log_json, kafka_log_level.upper())
    if metrics_port:
        try:
            metrics.serve(metrics_port, metrics_host)
        except OSError as exc:
            raise click.ClickException(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror}") from exc
    settings = Settings.from_env()
    ctx.obj = settings.with_bootstrap(bootstrap) if bootstrap else settings


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


# --- the local broker ---------------------------------------------------------------------

@main.group()
def kafka() -> None:
    """The local single-node Apache Kafka broker (KRaft), run from Kafka's own jars."""


@kafka.command("up")
@click.option("--heap", default=local_broker.DEFAULT_HEAP, show_default=True, help="JVM heap of the broker.")
@click.pass_context
def kafka_up(ctx: click.Context, heap: str) -> None:
    """Fetch the jars (once), format storage (once), start the broker and wait until it answers."""
    settings = settings_of(ctx)
    broker = local_broker.LocalBroker.for_settings(settings, heap)
    if local_broker.broker_answers(settings.bootstrap_servers) and broker.running_pid() is None:
        click.echo(f"a broker not started by newswire already answers at {settings.bootstrap_servers}; using it")
        return
    try:
        bootstrap = broker.start()
    except local_broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(bootstrap)


@kafka.command("down")
@click.pass_context
def kafka_down(ctx: click.Context) -> None:
    """Stop the broker that `newswire kafka up` started (and nothing else)."""
    stopped = local_broker.LocalBroker.for_settings(settings_of(ctx)).stop()
    click.echo("stopped" if stopped else "no broker started by newswire is running")


@kafka.command("status")
@json_option
@click.pass_context
def kafka_status(ctx: click.Context, as_json: bool) -> None:
    """Say whether the broker runs and answers; exit 3 when it does not answer."""
    settings = settings_of(ctx)
    pid = local_broker.LocalBroker.for_settings(settings).running_pid()
    answers = local_broker.broker_answers(settings.bootstrap_servers)
    emit([{"bootstrap": settings.bootstrap_servers, "answers": answers, "local_pid": pid or None}],
         ("bootstrap", "answers", "local_pid"), as_json)
    sys.exit(0 if answers else EXIT_KAFKA)


# --- topics -------------------------------------------------------------------------------

@main.group("topics")
def topics_group() -> None:
    """The topics newswire uses."""


@topics_group.command("ensure")
@click.pass_context
def topics_ensure(ctx: click.Context) -> None:
    """Create every topic the system uses, with its configuration; existing ones are kept."""
    for name, outcome in topics.ensure(settings_of(ctx)).items():
        click.echo(f"{name}: {outcome}")


@topics_group.command("list")
@json_option
@click.pass_context
def topics_list(ctx: click.Context, as_json: bool) -> None:
    """List the topics the system uses as the broker has them (partitions, configuration), and
    their purpose; exit 1 when one is missing (`newswire topics ensure` creates it)."""
    described = topics.describe(settings_of(ctx))
    emit(({"topic": spec.name, "state": "missing" if found is None else "present",
           "partitions": found and found.partitions, "config": found and dict(found.config),
           "purpose": spec.purpose} for spec, found in described),
         ("topic", "state", "partitions", "config", "purpose"), as_json)
    missing = sum(found is None for _, found in described)
    if missing:
        click.echo(f"{missing} topic(s) missing: create them with `newswire topics ensure`", err=True)
        sys.exit(1)


# --- commands of the parts ---------------------------------------------------------------
# Each part defines its commands in its own module, imported only when one of its commands runs
# (or `newswire --help` lists them): a call pays for the imports of its verb, not of all of them.
# `partners` comes through the partner API's module (`partners token`), which imports the replay
# part's (`partners backfill` and `enable`).
LAZY_COMMANDS = {
    "publish": "newswire.producers.publish:publish_command",
    "ingest": "newswire.producers.ingest_api:ingest",
    "archive": "newswire.consumers.archive.cli:archive",
    "replay": "newswire.consumers.replay.cli:replay",
    "partners": "newswire.consumers.partner_api.cli:partners_group",
    "partner-api": "newswire.consumers.partner_api.cli:partner_api",
    "deliveries": "newswire.consumers.webhooks.cli:deliveries_group",
    "webhooks": "newswire.consumers.webhooks.cli:webhooks_group",
    "status": "newswire.status.cli:status",
    "feeds": "newswire.consumers.feeds.cli:feeds",
    "newsml": "newswire.consumers.feeds.drop_folder:newsml_group",
    "run": "newswire.run:run",
}
main.lazy.update(LAZY_COMMANDS)


if __name__ == "__main__":
    main()
