"""Ports for services a test starts."""

from __future__ import annotations

import random
import socket

#: below Linux's ephemeral range (32768-60999), so no outgoing connection of the machine takes them
_LOW, _HIGH = 20000, 32000


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1 (e.g. `newswire run`'s metrics
    ports base + 1 …), outside the ephemeral range: a kernel-chosen free port plus N may be an
    ephemeral port that a client connection holds by then."""
    for _ in range(200):
        base = random.randrange(_LOW, _HIGH - count)
        if all(_bindable(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports between {_LOW} and {_HIGH}")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
