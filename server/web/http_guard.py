"""HTTP hardening, as one ASGI middleware: REST requests per client, and browser security headers.

REST (`/api/*`): at most `MAX_REQUESTS_PER_MIN` requests per client address per minute, counted
in this process's memory (`ratelimit.RequestLimiter`); beyond it 429 with `Retry-After` and the
API's usual `{"error": ...}` body. `/healthz` (probes) and the pages are not counted.

Every HTTP response gets the headers of `security_headers`: the pages' Content-Security-Policy
allows only the server's own scripts, styles, workers (the AudioWorklets) and its own socket,
no inline script, and framing only by the server's own origin and `ALLOWED_ORIGINS`.
"""

from __future__ import annotations

import functools
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.access import clients
from server.access.ratelimit import Clock, RequestLimiter
from server.settings import Settings
from server.web import api

RATE_LIMITED_PREFIX = "/api/"


@functools.lru_cache(maxsize=64)
def security_headers(
    own_origin: str | None, allowed: frozenset[str]
) -> tuple[tuple[bytes, bytes], ...]:
    """The headers for a response served from `own_origin` (None: its origin is unknown).

    `connect-src` names the socket's ws(s):// origin besides 'self': CSP3 lets 'self' cover
    ws: and wss: of the page's host, older browsers do not.
    """
    connect = ["'self'"]
    if own_origin is not None:
        connect.append(clients.ws_origin(own_origin))
    if "*" in allowed:
        ancestors = "*"
    else:
        ancestors = " ".join(["'self'", *sorted(allowed)])
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",  # modules and AudioWorklet modules: same origin, no inline
            "worker-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",  # the page's favicon is an empty data: URL
            "font-src 'self'",
            "manifest-src 'self'",
            f"connect-src {' '.join(connect)}",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
            f"frame-ancestors {ancestors}",
        ]
    )
    return (
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),  # ?token= in a page's URL must never leave it
    )


class HttpGuard:
    def __init__(self, app: ASGIApp, settings: Settings, clock: Clock = time.monotonic):
        self.app = app
        self.limiter = RequestLimiter(settings.max_requests_per_min, clock)
        # Read once: settings are frozen, and this runs for every request.
        self.proxies = settings.proxies
        self.public_origin = settings.public_origin
        self.origins = settings.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own = clients.scope_own_origin(scope, self.proxies, self.public_origin)
        extra = security_headers(own, self.origins)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        if self.limiter.enabled and scope["path"].startswith(RATE_LIMITED_PREFIX):
            limited = self.limiter.hit(clients.scope_client(scope, self.proxies))
            if limited is not None:
                response = api.error_response(
                    429, "rate_limited", "too many requests from this address; try again later"
                )
                response.headers["Retry-After"] = limited.retry_after_header
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)
