"""The text the guest would receive, as the demos print it after a call.

Read from the staff API (`GET /api/messages?phone=`): the demos run beside the server, where the
staff routes are open on loopback, or with `STAFF_TOKEN` in their environment. Nothing here is
public: a guest's texts are staff data. Without the Twilio settings the server still writes the
text (status `skipped_not_configured`), so the demo shows exactly what would have been sent.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from urllib.parse import urlsplit

import orjson

WAITING = ("pending", "sending")


def http_base(url: str) -> str:
    """`ws://host:port/v1/realtime` (or http://...) -> `http://host:port`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


def _newest(base: str, phone: str, token: str | None) -> dict[str, object] | None:
    query = urllib.parse.urlencode({"phone": phone, "limit": "10"})
    request = urllib.request.Request(f"{base}/api/messages?{query}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        items = orjson.loads(response.read()).get("items", [])
    texts = [item for item in items if item.get("kind") != "reminder"]
    return texts[0] if texts else None


def guest_text(url: str, phone: str, wait_s: float = 5.0) -> str:
    """One line: the newest text for `phone` and what became of it (waits for it to settle)."""
    base, token = http_base(url), os.environ.get("STAFF_TOKEN")
    number = phone.replace(" ", "")
    deadline = time.monotonic() + wait_s
    try:
        text = _newest(base, number, token)
        while text is not None and text.get("status") in WAITING and time.monotonic() < deadline:
            time.sleep(0.2)  # a demo's courtesy wait for the sender; bounded
            text = _newest(base, number, token)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return "text to the guest: (staff data: set STAFF_TOKEN to show it)"
        return f"text to the guest: (GET /api/messages answered {exc.code})"
    except (OSError, ValueError) as exc:
        return f"text to the guest: (could not read it: {exc})"
    if text is None:
        return "text to the guest: none"
    status = str(text.get("status"))
    unset = status == "skipped_not_configured"
    note = " - not sent: the Twilio settings are unset" if unset else ""
    return f'text to the guest [{status}{note}]: "{text.get("body")}"'
