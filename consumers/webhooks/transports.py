"""How a delivery reaches a partner, chosen by the scheme of its endpoint URL: one small
interface, one registry (:data:`SCHEMES`).

- ``https`` / ``http``: a signed POST (:mod:`.delivery`, :mod:`.signing`) through the pusher's
  one HTTP connection pool, every address through the SSRF guard (:mod:`.ssrf`);
- ``file``: a file in a drop folder (:mod:`.drop`), no signature.

Each transport says whether an endpoint is acceptable (at registration), what to do when the
pusher takes a partner on, and sends one delivery, returning a :class:`.delivery.Response`
whose ``ok`` means delivered whatever the transport.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Protocol
from urllib.parse import urlsplit

from newswire import logs
from newswire.consumers.webhooks import delivery, drop, signing, ssrf
from newswire.consumers.webhooks.config import Network, WebhookConfig

log = logs.get(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One attempt of one delivery: the partner-independent body with its partner's parts."""

    partner_id: str
    url: str
    #: the media type the body was rendered in (the partner's format when it was queued)
    content_type: str
    event_id: str
    article_id: str
    version: int
    seq: int
    #: the body in pieces (:func:`.payloads.pieces`), joined only while it is signed and written
    pieces: tuple[bytes, ...]
    secrets: tuple[str, ...]
    #: networks the endpoint may be on although private (the partner's and the installation's)
    allow: tuple[Network, ...]

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


class Transport(Protocol):
    def prepare(self, partner_id: str, url: str) -> None:
        """The pusher takes this partner on (once per process)."""

    def allow_host(self, url: str, allow: tuple[Network, ...]) -> None:
        """A partner's endpoint and the networks it may be on although private."""

    def idle(self, url: str) -> float:
        """How many deliveries to ``url`` could go now without opening a connection (those kept
        alive, idle; infinity where none is needed)."""

    async def send(self, out: Outgoing) -> delivery.Response:
        """Deliver ``out``; never raises for what the partner's side does."""

    async def close(self) -> None: ...


class HttpTransport:
    """Signed Standard Webhooks POSTs through one connection pool shared by every partner
    (:mod:`.http1`); open it in the loop that sends."""

    def __init__(self, config: WebhookConfig):
        self.timeout_s = config.timeout_s
        self.resolver = ssrf.GuardedResolver(config.allow_cidrs)
        self.client = delivery.session(self.resolver, in_flight=config.max_inflight)

    @staticmethod
    def check(url: str, allow: Iterable[Network]) -> None:
        ssrf.check_endpoint(url, allow)

    def prepare(self, partner_id: str, url: str) -> None:
        pass

    def allow_host(self, url: str, allow: tuple[Network, ...]) -> None:
        """Addresses ``url``'s host may resolve to although private (the resolver checks them)."""
        if host := urlsplit(url).hostname:
            self.resolver.by_host[host] = tuple(set(self.resolver.by_host.get(host, ())) | set(allow))

    def idle(self, url: str) -> float:
        return self.client.idle_to(url)

    async def send(self, out: Outgoing) -> delivery.Response:
        headers = signing.headers(out.event_id, out.body, out.secrets, content_type=out.content_type, seq=out.seq)
        return await delivery.post(self.client, out.url, out.pieces, headers, allow=out.allow,
                                   timeout_s=self.timeout_s)

    async def close(self) -> None:
        await self.client.close()


class FileTransport:
    """Deliveries written as files in a drop folder (:mod:`.drop`)."""

    def __init__(self, config: WebhookConfig):
        pass

    @staticmethod
    def check(url: str, allow: Iterable[Network]) -> None:
        drop.directory(url)

    def prepare(self, partner_id: str, url: str) -> None:
        for temp in drop.remove_leftovers(url):
            log.warning("drop_temp_removed", partner=partner_id, path=str(temp))

    def allow_host(self, url: str, allow: tuple[Network, ...]) -> None:
        pass

    def idle(self, url: str) -> float:
        return math.inf

    async def send(self, out: Outgoing) -> delivery.Response:
        return await drop.deliver(out.url, out.content_type, seq=out.seq, article_id=out.article_id,
                                  version=out.version, payload=out.body)

    async def close(self) -> None:
        pass


#: URL scheme → transport
SCHEMES: dict[str, type[HttpTransport] | type[FileTransport]] = {
    "https": HttpTransport, "http": HttpTransport, drop.SCHEME: FileTransport}


def kind(url: str) -> type[HttpTransport] | type[FileTransport]:
    """The transport of an endpoint URL; ValueError naming the scheme when there is none."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"url: scheme must be https (or http, or file:///dir for a drop folder),"
                         f" got {scheme or 'none'!r} in {url!r}")
    return SCHEMES[scheme]


def check_endpoint(url: str, allow: Iterable[Network]) -> None:
    """At registration: the endpoint is acceptable for its transport (SSRF guard, drop folder path)."""
    kind(url).check(url, allow)


class Transports:
    """The pusher's transports, one of each kind, opened on first use."""

    def __init__(self, config: WebhookConfig):
        self.config = config
        self._open: dict[type, HttpTransport | FileTransport] = {}

    def of(self, url: str) -> HttpTransport | FileTransport:
        cls = kind(url)
        if cls not in self._open:
            self._open[cls] = cls(self.config)
        return self._open[cls]

    async def close(self) -> None:
        for transport in self._open.values():
            await transport.close()
