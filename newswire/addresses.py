"""Whether a URL's host is one that partners must not be sent to fetch (the producer's check of
link and image URLs; docs/article-json.md).

Only what the URL itself says is checked, without resolving any name: an IP literal (IPv4 in
any form a resolver accepts: ``127.1``, ``0x7f.0.0.1``, ``2130706433``; IPv6, also with an IPv4
address inside: mapped, 6to4, Teredo, NAT64) that is not globally routable (loopback, private,
link-local, shared, unspecified, multicast, reserved, documentation), and the names reserved
for local use (``localhost`` and ``*.localhost``, ``*.local``, ``*.internal``,
``*.home.arpa``) and single-label names (which resolve through a search domain to internal
hosts). A public name may still resolve to an internal address, now or later: resolving it
here would prove nothing at the time a partner fetches, so that is the fetching side's check
(newswire's own pusher resolves and checks at connect time: consumers/webhooks/ssrf.py).
"""

from __future__ import annotations

import ipaddress
import socket

LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def not_public(host: str) -> str | None:
    """Why ``host`` (a URL's host, IPv6 without brackets) is not a public host, or None."""
    name = host.lower().rstrip(".")
    address = _literal(name)
    if address is not None:
        inner = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        for candidate in filter(None, (address, inner)):
            if not candidate.is_global or candidate.is_multicast:
                return f"points at {candidate}, which is not a public address ({_kind(candidate)})"
        return None
    if name == "localhost" or name.endswith(LOCAL_SUFFIXES):
        return f"names {host!r}, a host name reserved for local networks"
    if "." not in name:
        return f"names {host!r}, a single-label host name that only a local network resolves"
    return None


def _literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if ":" in name:
        try:
            return ipaddress.IPv6Address(name.split("%", 1)[0])
        except ValueError:
            return None
    if not name.replace(".", "").replace("x", "").isalnum() or not name[:1].isdigit():
        return None
    try:  # inet_aton takes what resolvers take: 127.1, 0x7f000001, 2130706433
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return "not globally routable"
