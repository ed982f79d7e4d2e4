"""Who counts as staff: the one rule every staff route uses (the book, its API, its live feed).

- `STAFF_TOKEN` set: `Authorization: Bearer <STAFF_TOKEN>`, compared in constant time. The
  callers' `ACCESS_TOKEN` is not enough: it is handed to every page that makes calls.
- `STAFF_TOKEN` unset: loopback clients only, so `make run` works on a laptop and a server on a
  network is closed by default. A request that carries forwarding headers came through a proxy
  and is not judged local, whatever address the proxy connects from.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from server.access.credentials import bearer
from server.settings import Settings

# Headers a reverse proxy adds; a request with any of them is not a local one.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True)
class StaffRefusal:
    """Why a request is not staff's: an HTTP status (401 or 403) and a message naming the fix."""

    status: int
    code: str
    message: str


NEEDS_TOKEN = StaffRefusal(
    401, "staff_unauthorized", "staff routes need Authorization: Bearer <STAFF_TOKEN>"
)
NOT_LOCAL = StaffRefusal(
    403,
    "staff_forbidden",
    "staff routes answer only this machine while STAFF_TOKEN is unset; "
    "set STAFF_TOKEN on the server and send it as Authorization: Bearer <STAFF_TOKEN>",
)


def staff_refusal(
    headers: Mapping[str, str], client_host: str | None, settings: Settings
) -> StaffRefusal | None:
    """None when the request may act as staff, else why not."""
    if settings.staff_token is not None:
        provided = bearer(headers)
        expected = settings.staff_token.get_secret_value().encode()
        if provided and hmac.compare_digest(provided.encode(), expected):
            return None
        return NEEDS_TOKEN
    if is_loopback(client_host) and not any(h in headers for h in FORWARDING_HEADERS):
        return None
    return NOT_LOCAL


def staff_allowed(headers: Mapping[str, str], client_host: str | None, settings: Settings) -> bool:
    return staff_refusal(headers, client_host, settings) is None


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and ::ffff:127.x; a name, a Unix socket (None) or garbage is not."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
