"""What start-up should shout about: settings that are fine on a laptop and unsafe on the internet.

Judged from `HOST` (where the server listens) and `PUBLIC_BASE_URL` (where people reach it): either
one beyond loopback means strangers can connect. One line per problem, naming the variable.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from server.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume it resolves beyond this machine


def exposed(settings: Settings) -> bool:
    """Does the server listen, or say it is reached, beyond this machine?"""
    if not is_loopback(settings.host):
        return True
    if settings.public_base_url is not None:
        return not is_loopback(urlsplit(settings.public_base_url).hostname or "")
    return False


def startup_warnings(settings: Settings) -> list[str]:
    phone = []
    if settings.twilio_auth_token is None:
        phone.append(
            "TWILIO_AUTH_TOKEN is not set: /twilio/voice takes unsigned webhooks and "
            "/twilio/media-stream needs no stream token (for local testing only; set it before "
            "pointing a real phone number here)"
        )
    phone += _sms_warnings(settings)
    if not exposed(settings):
        return phone
    where = f"listening on {settings.host}" + (
        f", public at {settings.public_base_url}" if settings.public_base_url else ""
    )
    warnings = []
    if settings.access_token is None:
        warnings.append(
            f"ACCESS_TOKEN is not set and the server is {where}: anyone who can reach it can "
            "open calls (billed model sessions) and read and write bookings through /api"
        )
    if settings.staff_token is None:
        warnings.append(
            f"STAFF_TOKEN is not set and the server is {where}: the staff book has no token "
            "of its own; set one before staff use it over the network"
        )
    if settings.any_origin:
        warnings.append(
            f"ALLOWED_ORIGINS=* and the server is {where}: any website can open calls from its "
            "visitors' browsers"
        )
    return warnings + phone


def _sms_warnings(settings: Settings) -> list[str]:
    """Guest texts half set up: some of the account settings, or links nobody can open."""
    parts = {
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
        "TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
        "SMS_FROM": settings.sms_from,
    }
    missing = [name for name, value in parts.items() if not value]
    if settings.twilio_account_sid or settings.sms_from:
        if missing:
            return [
                f"{' and '.join(missing)} not set: guests' texts are recorded as "
                "skipped_not_configured and never sent"
            ]
        if settings.public_base_url is None:
            return [
                "PUBLIC_BASE_URL is not set: the manage links in guests' texts point at "
                f"http://{settings.host}:{settings.port}, and no delivery reports come back"
            ]
    return []
