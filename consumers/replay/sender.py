"""A replay's ``--send``: the partner's deliveries sent by the pusher's own dispatcher for that
partner alone (:class:`~newswire.consumers.webhooks.pusher.PartnerSending`), in a process of its
own, so that signing and HTTP do not share the replay's interpreter lock with reading, rendering
and queueing (on two cores a backfill then reads and sends at once).

The sending process is the partner's one sender: it holds the partner's lease (PostgreSQL) or
the state file's pusher lock (SQLite) while it runs, as the replay process did before. The
replay talks to it over a pipe: a wake after each commit, a stop at the end (what is in flight
ends and is recorded, then the lease or lock is released). When the replay is gone without a
stop (killed), the sending process ends at once as well, as a killed single process would: its
lease runs out and a pusher takes the partner over after its quiet period.
"""

from __future__ import annotations

import os
from multiprocessing.connection import Connection

from newswire import logs
from newswire.child_process import Child
from newswire.config import Settings
from newswire.consumers.webhooks import partners as registry
from newswire.consumers.webhooks.config import WebhookConfig
from newswire.consumers.webhooks.leases import LeaseHeld
from newswire.consumers.webhooks.pusher import PartnerSending, PusherBusy

log = logs.get(__name__)

_WAKE, _STOP = "wake", "stop"


class SendRefused(RuntimeError):
    """The partner is sent for by a running pusher or another replay (the message names it)."""


class SenderFailed(RuntimeError):
    """The sending process ended before it was stopped (the message says why)."""


class PartnerSender:
    """Delivers one partner's pending deliveries from a process of its own; :meth:`wake` after
    each commit, :meth:`stop` at the end. Raises :class:`SendRefused` at once while a pusher
    (or another replay) sends for the partner, and :class:`~.partners.UnknownPartner`."""

    def __init__(self, settings: Settings, partner_id: str, config: WebhookConfig | None = None):
        self._process = Child(_send, settings, config or WebhookConfig.from_env(), partner_id,
                              name=f"send-{partner_id}")
        self._pipe = self._process.pipe
        self._stopped = False
        try:
            answer, detail = self._pipe.recv()
        except EOFError:
            self._process.join(30)
            answer, detail = "failed", self._process.ended()
        if answer != "ready":
            self._process.join(30)
            self._stopped = True
            raise {"refused": SendRefused, "unknown": registry.UnknownPartner}.get(answer, SenderFailed)(detail)

    @property
    def pid(self) -> int:
        return self._process.pid

    def wake(self) -> None:
        """New deliveries are in the outbox: look now rather than at the next poll."""
        if not self._stopped:
            try:
                self._pipe.send(_WAKE)
            except (BrokenPipeError, ConnectionResetError):
                pass  # it ended: check() says why

    def check(self) -> None:
        """Raise :class:`SenderFailed` when the sending process ended without being stopped."""
        if self._stopped:
            return
        if self._pipe.poll():
            try:
                _, detail = self._pipe.recv()
            except EOFError:
                self._process.join(5)
                detail = self._process.ended()
            raise SenderFailed(f"the sending process failed: {detail}")

    def stop(self, timeout: float = 60) -> None:
        """Stop sending (what is in flight ends and is recorded), then release the lease or lock."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._pipe.send(_STOP)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if not self._process.join(timeout):
            log.warning("replay_sender_kill", pid=self._process.pid, waited_s=timeout)
            self._process.kill()
        self._pipe.close()


def _send(pipe: Connection, settings: Settings, config: WebhookConfig, partner_id: str) -> None:
    """The sending process: the dispatcher for ``partner_id`` until told to stop (see module doc)."""
    try:
        sending = PartnerSending(settings, config, partner_id)
    except (LeaseHeld, PusherBusy) as exc:
        pipe.send(("refused", str(exc)))
        return
    except registry.UnknownPartner as exc:
        pipe.send(("unknown", str(exc)))
        return
    pipe.send(("ready", os.getpid()))
    while True:
        try:
            if not pipe.poll(1.0):
                if sending.error is not None:
                    pipe.send(("failed", f"{type(sending.error).__name__}: {sending.error}"))
                    sending.stop()
                    return
                continue
            message = pipe.recv()
        except (EOFError, OSError):  # the replay is gone without a stop: so is its sender, at once
            os._exit(1)
        if message == _WAKE:
            sending.wake()
        elif message == _STOP:
            sending.stop()
            return
