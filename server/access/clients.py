"""Who is asking, and from where: the client's address and the server's own origin. Pure.

Limits are kept per client address, so the address must be one a client cannot choose. It is the
TCP peer, unless that peer is a proxy listed in `TRUSTED_PROXIES`: then `X-Forwarded-For` is
walked from the right (the entries the trusted proxies appended themselves), skipping proxies
that are trusted too, and the first address not trusted is the client. Whatever a client writes
at the left of that header is never reached, and the header from an untrusted peer is ignored.

IPv6 clients are keyed by their /64: a single host is usually given a whole /64 and could
otherwise take a fresh address per call.

The server's own origin (what "same origin" means for the browser socket and the pages' CSP) is
`PUBLIC_BASE_URL` when set; else the request's scheme and `Host`, with `X-Forwarded-Proto` and
`X-Forwarded-Host` believed only from a trusted proxy.

uvicorn rewrites the peer from `X-Forwarded-For` itself unless started with
`proxy_headers=False` (`UVICORN_OPTIONS`), and it trusts loopback by default; with that left on, a
local process could pick its own address. `python -m server` and the tests turn it off, so these
rules are the only ones.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Scope

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = tuple[IPNetwork, ...]

_HOST = re.compile(r"[a-z0-9._-]+")
UNKNOWN_CLIENT = "unknown"  # no peer address at all (a Unix socket): one shared key
IPV6_CLIENT_PREFIX = 64
DEFAULT_PORTS = {"http": 80, "https": 443}
WS_SCHEMES = {"ws": "http", "wss": "https"}

# For uvicorn.Config / uvicorn.run: these rules, not uvicorn's, decide who the client is.
UVICORN_OPTIONS: dict[str, Any] = {"proxy_headers": False}


@functools.lru_cache(maxsize=32)
def parse_networks(text: str) -> Networks:
    """`"10.0.0.1, 10.1.0.0/16, fd00::/8"` -> networks; a bad entry raises ValueError."""
    networks = []
    for entry in text.split(","):
        entry = entry.strip()
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return tuple(networks)


def parse_address(text: str) -> IPAddress | None:
    """An address as it appears in a peer or a forwarded header: `1.2.3.4`, `1.2.3.4:5678`,
    `[2001:db8::1]:443`, `2001:db8::1`; None when it is not an address (`unknown`, junk)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def trusted(address: IPAddress | None, networks: Networks) -> bool:
    return address is not None and any(address in network for network in networks)


def address_key(address: IPAddress) -> str:
    """The key limits are counted under: the IPv4 address, or the IPv6 /64."""
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False)
        return str(network)
    return str(address)


def client_address(peer: str | None, forwarded_for: Iterable[str], proxies: Networks) -> str:
    """The client's key, from the TCP peer and the `X-Forwarded-For` header values (in order).

    Only entries appended by trusted proxies are read: from the right, while the hop that wrote
    the entry is trusted. An entry that is not an address stops the walk at the hop that wrote
    it (that proxy is the best we know).
    """
    address = parse_address(peer) if peer is not None else None
    if address is None:
        return UNKNOWN_CLIENT
    if not trusted(address, proxies):
        return address_key(address)
    entries = [e for value in forwarded_for for e in value.split(",") if e.strip()]
    for entry in reversed(entries):
        hop = parse_address(entry)
        if hop is None:
            break
        address = hop
        if not trusted(address, proxies):
            break
    return address_key(address)


@functools.lru_cache(maxsize=1024)  # read on every request: the same few values
def normalize_origin(text: str) -> str | None:
    """`scheme://host[:port]`, lower-cased, default port dropped; None if not an http(s) origin.

    A trailing `/` is tolerated (people copy URLs); paths, queries, user names are not.
    """
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = WS_SCHEMES.get(parts.scheme.lower(), parts.scheme.lower())
    host = parts.hostname
    if scheme not in DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    if ":" in host:
        try:
            host = f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            return None
    elif not _HOST.fullmatch(host):  # it may end up in a header (CSP): nothing but a name
        return None
    suffix = "" if port is None or port == DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{suffix}"


def request_origin(
    scheme: str,
    host: str | None,
    peer: str | None,
    headers: dict[str, str],
    proxies: Networks,
) -> str | None:
    """The origin this request was addressed to: scheme and Host, or a trusted proxy's word.

    `headers` holds the lower-cased `x-forwarded-proto` / `x-forwarded-host` values if present;
    with several proxies the rightmost entry is the one our own peer wrote.
    """
    if proxies and peer and trusted(parse_address(peer), proxies):
        forwarded_proto = headers.get("x-forwarded-proto", "").rpartition(",")[2].strip()
        forwarded_host = headers.get("x-forwarded-host", "").rpartition(",")[2].strip()
        scheme = forwarded_proto or scheme
        host = forwarded_host or host
    if not host:
        return None
    return normalize_origin(f"{scheme}://{host}")


def ws_origin(origin: str) -> str:
    """`https://x` -> `wss://x`: the same origin as a WebSocket URL, for CSP's connect-src."""
    scheme, _, rest = origin.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"


# --- the same, read from an ASGI scope (HTTP or WebSocket) ------------------------------------

_FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"host", b"origin")


def _scope_headers(scope: Scope) -> tuple[list[str], dict[str, str]]:
    """(every X-Forwarded-For value in order, the last value of the other headers we read)."""
    forwarded_for: list[str] = []
    single: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name in _FORWARDED:
            text = value.decode("latin-1")
            if name == b"x-forwarded-for":
                forwarded_for.append(text)
            else:
                single[name.decode()] = text
    return forwarded_for, single


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def scope_client(scope: Scope, proxies: Networks) -> str:
    forwarded_for, _ = _scope_headers(scope)
    return client_address(_peer(scope), forwarded_for, proxies)


def scope_own_origin(scope: Scope, proxies: Networks, public_origin: str | None) -> str | None:
    """`PUBLIC_BASE_URL`'s origin, else the origin the request was addressed to."""
    if public_origin is not None:
        return public_origin
    _, headers = _scope_headers(scope)
    scheme = str(scope.get("scheme", "http"))
    return request_origin(scheme, headers.get("host"), _peer(scope), headers, proxies)


def scope_origin_header(scope: Scope) -> str | None:
    """The request's `Origin` header as sent (None when absent)."""
    return _scope_headers(scope)[1].get("origin")
