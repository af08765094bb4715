"""``newswire`` commands run in the test process (click's CliRunner), with their environment
given to Python only.

click's ``CliRunner(env=...)`` writes the variables into the process's C environment
(``setenv``), and a new variable makes glibc reallocate the ``environ`` array and free the old
one. Other threads of the test process (an in-process pusher, partner servers, executor threads
in libpq or ``getaddrinfo``) may be reading that array with ``getenv`` at the same moment,
without the GIL: under ``deploy/dev.sh test-ahead`` libfaketime calls ``getenv`` inside every
contended GIL wait, and the test process died of SIGSEGV reading the freed array. newswire reads
its settings through ``os.environ``, and nothing it runs in-process needs them in the C
environment, so :func:`python_environ` changes ``os.environ``'s mapping and leaves the C
environment alone. (newswire itself never changes its environment once started.)
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import click
from click.testing import CliRunner, Result


@contextmanager
def python_environ(env: Mapping[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``env`` applied (None: removed) for the block, without ``setenv``."""
    data = os.environ._data  # the mapping behind os.environ; writing it skips putenv()
    key, value = os.environ.encodekey, os.environ.encodevalue
    saved = {name: data.get(key(name)) for name in env}
    try:
        for name, new in env.items():
            if new is None:
                data.pop(key(name), None)
            else:
                data[key(name)] = value(new)
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                data.pop(key(name), None)
            else:
                data[key(name)] = old


def invoke(command: click.Command, args: Sequence[str], env: Mapping[str, str | None] | None = None,
           **options) -> Result:
    """``CliRunner().invoke(command, args, **options)`` with ``env`` given as :func:`python_environ`."""
    with python_environ(env or {}):
        return CliRunner().invoke(command, list(args), **options)
