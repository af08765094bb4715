"""The SSRF guard: partner endpoints may only be on public addresses.

An endpoint whose host is, or resolves to, a loopback, private, multicast, reserved,
unspecified or otherwise not globally routable address is refused, unless the address is in
an explicit allowlist of networks (``NEWSWIRE_WEBHOOK_ALLOW_CIDRS``, or the partner's own
``allow_cidrs``). Cloud metadata addresses (169.254.169.254, 169.254.170.2, fd00:ec2::254, ...)
and link-local addresses (169.254.0.0/16, fe80::/10, where metadata services live) are
refused whatever the allowlist says, even ``0.0.0.0/0`` or ``::/0``: that rule is checked
first, also on an IPv4 address carried in an IPv6 one (mapped, NAT64, 6to4, Teredo).

It is checked twice: when a partner is registered or its URL changed, and on every
connection, on the addresses actually connected to: :class:`GuardedResolver` is the
resolver of the HTTP client, so a name that resolves to a public address at registration
and to 10.0.0.1 later (DNS rebinding) is refused at connect time; literal IPs, which the
client does not resolve, are checked by :func:`check_literal` before each request.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from newswire.consumers.webhooks.config import Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CLOUD_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
    "169.254.170.2",    # AWS ECS task metadata
    "fd00:ec2::254",    # AWS IMDS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))


class EndpointRefused(OSError):
    """The endpoint is on an address partners' endpoints may not be on."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _never(ip: IPAddress) -> str | None:
    """Why ``ip`` is refused whatever the allowlist: cloud metadata, link-local."""
    if ip in CLOUD_METADATA:
        return f"{ip} is a cloud metadata address (never allowed)"
    if ip.is_link_local:
        return f"{ip} is a link-local address, where cloud metadata services are (never allowed)"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour or (ip.teredo[1] if ip.teredo else None)


def refusal(address: str | IPAddress, allow: Iterable[Network] = ()) -> str | None:
    """Why a connection to ``address`` is refused, or None when it is allowed."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    carried = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    for candidate in filter(None, (ip, carried)):
        if why := _never(candidate):
            return why
    if carried is not None and ip.ipv4_mapped is not None:
        ip = carried
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    for test, what in ((ip.is_loopback, "loopback"),
                       (ip.is_multicast, "multicast"), (ip.is_unspecified, "unspecified"),
                       (ip.is_reserved, "reserved"), (ip.is_private, "private")):
        if test:
            return f"{ip} is a {what} address"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


def literal(host: str) -> IPAddress | None:
    """The IP address ``host`` (a URL's host, IPv6 in brackets or not) is, or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def host_port(url: str) -> tuple[str, int]:
    """An http(s) URL's host and port (its scheme's default when none); ValueError naming the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url: scheme must be https (or http, or file:///dir for a drop folder),"
                         f" got {parts.scheme or 'none'!r} in {url!r}")
    if not parts.hostname:
        raise ValueError(f"url: no host in {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"url: bad port in {url!r}: {exc}") from exc
    return parts.hostname, port


def check_literal(url: str, allow: Iterable[Network] = ()) -> None:
    """Refuse a URL whose host is a literal IP on a refused address (the client does not resolve those)."""
    if why := _literal_refusal(url, tuple(allow)):
        raise EndpointRefused(f"endpoint {url} refused: {why}")


@functools.lru_cache(maxsize=65536)
def _literal_refusal(url: str, allow: tuple[Network, ...]) -> str | None:
    """Why a URL with a literal IP host is refused (None: allowed, or not a literal IP); the
    same on every attempt, so worked out once per endpoint."""
    host, _ = host_port(url)
    ip = literal(host)
    return refusal(ip, allow) if ip is not None else None


def check_endpoint(url: str, allow: Iterable[Network] = ()) -> list[str]:
    """At registration: refuse a URL whose host is, or resolves to, any refused address.

    Returns the addresses it resolves to. Raises :class:`EndpointRefused` (or ValueError for a
    malformed URL or a name that does not resolve).
    """
    allow = tuple(allow)
    host, port = host_port(url)
    if literal(host) is not None:
        check_literal(url, allow)
        return [str(literal(host))]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"url: host {host!r} does not resolve: {exc}") from exc
    addresses = sorted({info[4][0] for info in infos})
    for address in addresses:
        if why := refusal(address, allow):
            raise EndpointRefused(f"endpoint {url} refused: {host} resolves to {address}: {why}")
    return addresses


class GuardedResolver(AbstractResolver):
    """The HTTP client's resolver: resolves as usual, then refuses if any address is refused.

    ``allow`` holds for every host, ``by_host`` adds the networks the partners on a host name
    were allowed (one connection pool serves every partner; the partners on one host name
    share its addresses)."""

    def __init__(self, allow: Iterable[Network] = ()):
        self.allow = tuple(allow)
        self.by_host: dict[str, tuple[Network, ...]] = {}
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if why := refusal(result["host"], self.allow + self.by_host.get(host, ())):
                raise EndpointRefused(f"{host} resolves to {result['host']}: {why}")
        return results

    async def close(self) -> None:
        await self._inner.close()
