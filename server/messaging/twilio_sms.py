"""Twilio's Messaging API behind one small client: send a text, or say how it failed.

The `twilio` library's async HTTP client does the request (built once, inside the running loop).
It does not apply its own timeout to requests, so each send is bounded here by
`TWILIO_TIMEOUT_S`; its built-in retries are left off, because the outbox counts attempts itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from server.settings import Settings

# Twilio's error for a recipient who replied STOP to this sender (Twilio refuses to send).
UNSUBSCRIBED = 21610


@dataclass(frozen=True)
class SendFailed(Exception):
    """A send that did not go through. `retry`: worth another attempt (Twilio 5xx, 429,
    timeouts, connection trouble); else final. `opted_out`: Twilio says the guest said STOP."""

    reason: str
    retry: bool
    opted_out: bool = False

    def __str__(self) -> str:
        return self.reason


class TwilioSms:
    """One per process, open from start-up to shutdown."""

    def __init__(self, settings: Settings):
        if not settings.sms_configured:
            raise ValueError("TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and SMS_FROM are needed")
        assert settings.twilio_auth_token is not None and settings.sms_from is not None
        self.settings = settings
        self.sender = settings.sms_from
        self.http = AsyncTwilioHttpClient(timeout=settings.twilio_timeout_s)
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            http_client=self.http,
        )
        if settings.twilio_api_base_url:
            self.client.api.base_url = settings.twilio_api_base_url

    async def send(self, to: str, body: str, status_callback: str | None) -> str:
        """Send one text; its Twilio SID (SM...). Raises `SendFailed`."""
        options: dict[str, str] = {}
        if self.sender.startswith("MG"):
            options["messaging_service_sid"] = self.sender
        else:
            options["from_"] = self.sender
        if status_callback is not None:
            options["status_callback"] = status_callback
        try:
            async with asyncio.timeout(self.settings.twilio_timeout_s):
                message = await self.client.messages.create_async(to=to, body=body, **options)
        except TwilioRestException as exc:
            status = int(exc.status or 0)
            reason = f"Twilio {status}" + (f" error {exc.code}" if exc.code else "")
            reason += f": {exc.msg}" if exc.msg else ""
            if exc.code == UNSUBSCRIBED:
                raise SendFailed(reason, retry=False, opted_out=True) from None
            raise SendFailed(reason, retry=status >= 500 or status == 429) from None
        except TimeoutError:
            raise SendFailed(
                f"no answer from Twilio within {self.settings.twilio_timeout_s:g} s", retry=True
            ) from None
        except Exception as exc:  # connection refused, reset, DNS: the library's transport
            raise SendFailed(f"{type(exc).__name__}: {exc}"[:300], retry=True) from None
        return str(message.sid)

    async def close(self) -> None:
        await self.http.close()
