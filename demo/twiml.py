"""The voice webhook as Twilio posts it, and the TwiML it answers.

The phone demo rings the server the way Twilio does: a form-encoded POST to `/twilio/voice`,
signed with `TWILIO_AUTH_TOKEN` by the `twilio` library's `RequestValidator` when that is set,
and reads the `<Stream>` URL and its `<Parameter>`s from the TwiML. Blocking (urllib, bounded by
a timeout): the demo runs it in a thread.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import urlencode, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

from demo.phone_log import PhoneDemoFailed

VOICE_PATH = "/twilio/voice"
ACCOUNT_SID = "AC" + "0" * 32
RESTAURANT = "+6560000000"


def http_base(url: str) -> str:
    """`http://host:port` from whatever the user gave (ws://…/v1/realtime, host:port, …)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def webhook_form(call_sid: str, caller: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "From": caller,
        "To": RESTAURANT,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def parse_twiml(text: str) -> tuple[str, dict[str, str]]:
    """The `<Stream>` URL and its `<Parameter>`s; PhoneDemoFailed for a busy or odd answer."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise PhoneDemoFailed(f"the voice webhook did not answer TwiML: {text[:200]!r}") from None
    stream = root.find("./Connect/Stream")
    if stream is None:
        said = root.findtext("Say") or ""
        raise PhoneDemoFailed(f"the call was not connected to a stream: {said or text[:200]}")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), parameters


def post_webhook(url: str, form: dict[str, str], auth_token: str | None, timeout: float) -> str:
    """POST the form as Twilio does (blocking; run in a thread). Returns the TwiML."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth_token:
        headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(url, form)
    request = urllib.request.Request(url, urlencode(form).encode(), headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")[:300]
        raise PhoneDemoFailed(f"the voice webhook answered {exc.code}: {body}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PhoneDemoFailed(f"could not post the voice webhook to {url}: {exc}") from None
