"""Standard Webhooks as OpenAI sends them: the signature, the incoming-call event, the POST.

The offline model's SIP side rings the server with these (`SipPlane.place_call`), and tests
post tampered, stale and repeated deliveries with them. The package needs no HTTP client, so
the POST is a one-shot HTTP/1.1 request over asyncio streams, bounded by `HTTP_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from . import events

HTTP_TIMEOUT_S = 10.0


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def new_secret() -> str:
    """A webhook secret shaped like OpenAI's (``whsec_`` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def incoming_event(call_id: str, caller: str, to: str) -> dict[str, Any]:
    """The body OpenAI posts for a new call (`realtime.call.incoming`), SIP headers included."""
    return {
        "object": "event",
        "id": events.new_id("evt"),
        "type": "realtime.call.incoming",
        "created_at": int(time.time()),
        "data": {
            "call_id": call_id,
            "sip_headers": [
                {"name": "From", "value": f'"Caller" <sip:{caller}@carrier.example>;tag=1a2b'},
                {"name": "To", "value": f"<sip:{to}@sip.api.openai.com;transport=tls>"},
                {"name": "Call-ID", "value": secrets.token_hex(8)},
            ],
        },
    }


async def post_webhook(
    url: str,
    body: bytes,
    *,
    secret: str | None,
    webhook_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[int, bytes]:
    """POST a webhook as OpenAI does (signed unless `secret` is None); (status, body) back."""
    headers = {"content-type": "application/json"}
    if secret is not None:
        webhook_id = webhook_id or events.new_id("wh")
        timestamp = int(time.time()) if timestamp is None else timestamp
        headers["webhook-id"] = webhook_id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign(secret, webhook_id, timestamp, body)
    return await http_post(url, body, headers)


async def http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """A one-shot HTTP/1.1 POST over asyncio streams (the package needs no HTTP client)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    async with asyncio.timeout(HTTP_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
            head += [f"{k}: {v}" for k, v in headers.items()]
            head += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
            writer.write("\r\n".join(head).encode() + body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload
