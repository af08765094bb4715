#!/usr/bin/env bash
# newswire from nothing: `deploy/dev.sh run` (the system, with its broker) and
# `deploy/dev.sh test` (the whole test suite). Each sets itself up: a virtual environment
# in .venv, the package and its test tools, Java and Maven where missing (Debian), and the
# broker's jars (fetched by Maven into ~/.cache/newswire on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${NEWSWIRE_VENV:-.venv}

# Debian packages: Java and Maven for the broker; for the tests, Chromium (the status page's browser
# test), Prometheus (its promtool checks and unit-tests the alert rules in deploy/prometheus/),
# Node.js (the partner guide's JavaScript signature check, tests/test_partner_guide.py) and
# PostgreSQL's server (the webhook state's second store; the tests run it themselves in a
# temporary cluster, so the package's own cluster need not run).
need_system_packages() {
  local missing=()
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  [ "${1:-}" = test ] && ! command -v chromium >/dev/null && missing+=(chromium)
  [ "${1:-}" = test ] && ! command -v node >/dev/null && missing+=(nodejs)
  [ "${1:-}" = test ] && ! command -v promtool >/dev/null && missing+=(prometheus)
  [ "${1:-}" = test ] && ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null && missing+=(postgresql)
  ((${#missing[@]})) && install_system_packages "${missing[@]}"
  return 0
}

# Debian packages by name, from fresh package lists (a fresh machine's may be empty or stale).
install_system_packages() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else
    echo "newswire needs $*: install them and run again" >&2; exit 1
  fi
}

# The package alone for `run`; with its test tools for `test`. The pip that `python3 -m venv`
# ships is used as is, so that what works here works for a plain `pip install .`.
setup() {
  need_system_packages "$1"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  if [ "$1" = test ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"
    # Superdesk's ingest parsers, test clients of the NewsML-G2 and ninjs outputs: its files only
    # (its dependencies are a whole newsroom server; tests/superdesk_parsers.py stubs its app context)
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "superdesk-core==2.5.3"
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .
  fi
}

# The tests in pytest's own process, or with NEWSWIRE_TEST_WORKERS=N in N parallel processes
# (pytest-xdist), each with a broker and a PostgreSQL of its own (tests/conftest.py). Most tests
# wait on a broker, a server or a timeout, so their waits overlap even on two cores, but a known
# flake keeps the default at one process (README: Tests). Work-stealing: a worker that runs out
# takes tests queued for another, so no worker is left alone with a long tail.
test_workers=()
if [ "${NEWSWIRE_TEST_WORKERS:-0}" != 0 ]; then
  test_workers=(-n "$NEWSWIRE_TEST_WORKERS" --dist worksteal)
fi

case "${1:-}" in
  run)
    setup run
    shift
    exec "$VENV/bin/newswire" run "$@"
    ;;
  test)
    setup test
    shift
    exec "$VENV/bin/python" -m pytest "${test_workers[@]}" "$@"
    ;;
  test-ahead)
    # the suite with the wall clock moved by NEWSWIRE_TEST_CLOCK (default +365d) for every process.
    # Python runs under PyPI's libfaketime build with its monotonic clock real (with it faked,
    # Event.wait(timeout) never returns; Debian's 0.9.10 breaks time.sleep without it). The broker's
    # JVM (Kafka mixes both clocks) and Chromium (minutes to start under PyPI's build) run under
    # Debian's library, monotonic faked too, through wrappers found by JAVA_HOME and
    # NEWSWIRE_TEST_CHROMIUM. A wrapper preloads the library and execs the program itself: the
    # `faketime` command forks, and stopping it would leave the broker running. Tests marked
    # cpu_budget are left out: the library alone makes a waiting consumer use 10x the CPU.
    setup test
    shift
    command -v faketime >/dev/null || install_system_packages faketime
    offset=${NEWSWIRE_TEST_CLOCK:-+365d}
    preload=$("$VENV/bin/python" -c 'import libfaketime, pathlib; print(next(pathlib.Path(libfaketime.__file__).parent.glob("vendor/libfaketime/src/libfaketime.so.1")))')
    debian_preload=$(ls /usr/lib/*/faketime/libfaketime.so.1 | head -1)
    wrappers=$(mktemp -d)
    mkdir "$wrappers/bin"
    for program in java chromium; do
      printf '#!/bin/sh\nunset FAKETIME_DONT_FAKE_MONOTONIC\nLD_PRELOAD="%s" FAKETIME="%s" exec "%s" "$@"\n' \
        "$debian_preload" "$offset" "$(readlink -f "$(command -v "$program")")" > "$wrappers/bin/$program"
      chmod +x "$wrappers/bin/$program"
    done
    NEWSWIRE_TEST_CHROMIUM=$wrappers/bin/chromium JAVA_HOME=$wrappers LD_PRELOAD=$preload FAKETIME=$offset FAKETIME_DONT_FAKE_MONOTONIC=1 \
      exec "$VENV/bin/python" -m pytest "${test_workers[@]}" -m "not cpu_budget" "$@"
    ;;
  *)
    echo "usage: deploy/dev.sh run|test|test-ahead [args]" >&2
    exit 2
    ;;
esac
