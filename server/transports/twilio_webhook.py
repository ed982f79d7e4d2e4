"""`POST /twilio/voice`: Twilio's voice webhook answers a call with a media stream to us.

The answer is TwiML: `<Connect><Stream url="wss://…/twilio/media-stream">` with `<Parameter>`s
for the caller's number and a short-lived signed stream token. With `TWILIO_AUTH_TOKEN` set the
request must carry a valid `X-Twilio-Signature` (checked by the `twilio` library's
`RequestValidator` against our public URL), and the media stream is accepted only with the
token minted here; the token names the call, so it cannot open a stream for another. Any worker
or host can check it: it is an HMAC keyed by the auth token, not state in this process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from server.access.budget import BUSY_MESSAGE as BUDGET_MESSAGE
from server.call.switchboard import Refused, Switchboard
from server.settings import Settings
from server.web.api import error_response
from server.web.public_url import public_base

log = logging.getLogger("server.twilio")

STREAM_PATH = "/twilio/media-stream"
MAX_WEBHOOK_BYTES = 64 * 1024
BUSY_MESSAGE = "Sorry, all our lines are busy right now. Please call again in a few minutes."


def stream_url(base: str) -> str:
    scheme, rest = base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{STREAM_PATH}"


# -- stream tokens ------------------------------------------------------------------------------


def _key(auth_token: str) -> bytes:
    return hmac.new(auth_token.encode(), b"twilio-media-stream-token", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_stream_token(auth_token: str, call_sid: str, caller: str, expires: float) -> str:
    body = _b64(orjson.dumps({"call": call_sid, "from": caller, "exp": int(expires)}))
    signature = _b64(hmac.new(_key(auth_token), body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def read_stream_token(auth_token: str, token: str, call_sid: str, now: float) -> dict[str, Any]:
    """The token's claims if it is ours, unexpired and for this call; else ValueError."""
    body, _, signature = token.partition(".")
    expected = _b64(hmac.new(_key(auth_token), body.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        raise ValueError("bad signature")
    try:
        claims = orjson.loads(_unb64(body))
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError("unreadable") from None
    if not isinstance(claims, dict) or claims.get("call") != call_sid:
        raise ValueError("for another call")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
        raise ValueError("expired")
    return claims


# -- the webhook ----------------------------------------------------------------------------------


def twiml(body: VoiceResponse) -> Response:
    return Response(str(body), media_type="text/xml")


class VoiceWebhook:
    """The handler of `POST /twilio/voice`."""

    def __init__(self, settings: Settings, board: Switchboard):
        self.settings = settings
        self.board = board
        token = settings.twilio_auth_token
        self.auth_token = token.get_secret_value() if token else None
        self.validator = RequestValidator(self.auth_token) if self.auth_token else None

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return error_response(413, "body_too_large", "The webhook body is too large.")
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        base = public_base(self.settings, request.headers, request.url.scheme)
        if self.validator is not None:
            url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            signature = request.headers.get("x-twilio-signature", "")
            if not signature or not self.validator.validate(url, params, signature):
                log.warning("refused a voice webhook with a missing or wrong signature")
                return error_response(
                    403, "invalid_signature", "X-Twilio-Signature is missing or does not match."
                )
        call_sid = params.get("CallSid", "")
        caller = params.get("From", "")
        if not call_sid:
            return error_response(422, "validation_failed", "CallSid is required.")
        try:
            self.board.check_capacity()
        except Refused as refusal:
            log.warning("a phone call turned away: %s", refusal.reason)
            busy = VoiceResponse()
            spent = refusal.error.get("error", {}).get("code") == "budget_exhausted"
            busy.say(BUDGET_MESSAGE if spent else BUSY_MESSAGE)
            busy.hangup()
            return twiml(busy)
        connect = Connect()
        stream = connect.stream(url=stream_url(base))
        stream.parameter(name="caller", value=caller)
        if self.auth_token is not None:
            expires = time.time() + self.settings.stream_token_ttl_s
            token = mint_stream_token(self.auth_token, call_sid, caller, expires)
            stream.parameter(name="token", value=token)
        log.info("phone call %s from %s: connecting a media stream", call_sid, caller)
        response = VoiceResponse()
        response.append(connect)
        return twiml(response)
