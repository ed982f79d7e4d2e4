"""Who may connect: the optional access token and the browser Origin check.

With `ACCESS_TOKEN` unset everything is open (a local demo). Set, it is required on the voice
socket (`?token=`, `Authorization: Bearer`, or `X-Access-Token`) and on `/api/*` (`Authorization:
Bearer`). The SDK sends its `api_key` as `Authorization: Bearer`, so an SDK client passes the
access token as its key.

A browser always sends `Origin` on a WebSocket handshake, so by default only pages of the
server's own origin may open the socket: otherwise any website could make its visitors' browsers
open billed model sessions. `ALLOWED_ORIGINS` adds origins, and `*` lets every website in (a
deliberate choice). Clients that send no Origin (the SDK, the demo, servers) are not browsers and
are judged by the token alone.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from server.access.clients import normalize_origin
from server.settings import Settings


def token_ok(provided: str | None, settings: Settings) -> bool:
    if settings.access_token is None:
        return True
    if not provided:
        return False
    expected = settings.access_token.get_secret_value()
    return hmac.compare_digest(provided.encode(), expected.encode())


def bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def socket_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    return query.get("token") or bearer(headers) or headers.get("x-access-token")


def origin_allowed(origin: str | None, own: str | None, allowed: frozenset[str]) -> bool:
    """May a page of `origin` open the socket of a server whose own origin is `own`?

    `allowed` is ALLOWED_ORIGINS, normalised; `Origin: null` (sandboxed frames, files) is never
    anyone's own origin.
    """
    if origin is None or "*" in allowed:
        return True
    normalized = normalize_origin(origin)
    if normalized is None:
        return False
    return normalized == own or normalized in allowed
