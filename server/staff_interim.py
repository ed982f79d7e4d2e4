"""INTERIM staff rule for the call records' endpoints, until the staff book lands on main.

Same rule as the staff-book branch's `server/staff_auth.py` (and to be replaced by it on merge):
`STAFF_TOKEN` set → `Authorization: Bearer <STAFF_TOKEN>`, compared in constant time; unset →
loopback clients only, and never a request that carries a proxy's forwarding headers.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from server.access import bearer
from server.settings import Settings

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


@dataclass(frozen=True)
class StaffRefusal:
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
    if _loopback(client_host) and not any(h in headers for h in FORWARDING_HEADERS):
        return None
    return NOT_LOCAL


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
