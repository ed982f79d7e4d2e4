"""Our public address, as Twilio (and a guest's phone) reaches us.

Shared by every Twilio webhook (voice, SMS, delivery reports: their signatures are computed over
the public URL) and by the guests' manage links.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from server.settings import Settings


def public_base(settings: Settings, headers: Headers, scheme: str) -> str:
    """`PUBLIC_BASE_URL`, else the request's (as a proxy forwarded it)."""
    if settings.public_base_url:
        return settings.public_base_url
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip() or scheme
    proto = {"ws": "http", "wss": "https"}.get(proto, proto)
    host = headers.get("x-forwarded-host", "").split(",")[0].strip() or headers.get("host", "")
    return f"{proto}://{host}"


def configured_base(settings: Settings) -> str:
    """Where links in texts point: `PUBLIC_BASE_URL`, else this server's own host and port
    (good for a machine of one's own, not for guests' phones)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"
