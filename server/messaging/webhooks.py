"""Twilio's SMS webhooks: replies from guests (`POST /twilio/sms`) and delivery reports
(`POST /twilio/sms-status`).

Both must carry a valid `X-Twilio-Signature`, checked by the `twilio` library's
`RequestValidator` over our public URL (query included) and the form; anything else, and any
request while `TWILIO_AUTH_TOKEN` is unset, is 403. A reply that is one of Twilio's opt-out words
(STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) opts the number out of every further text; an
opt-in word (START, YES, UNSTOP) opts it back in; HELP or INFO is answered with the restaurant's
name and number. Twilio itself also confirms STOP and START to the guest, so those get an empty
answer. Every other reply is kept for the staff (`GET /api/messages`).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from server.book import outbox
from server.logs import mask_phones
from server.messaging import texts
from server.settings import Settings
from server.web.api import error_response
from server.web.public_url import public_base

log = logging.getLogger("server.messaging")

MAX_WEBHOOK_BYTES = 64 * 1024
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP", "INFO"})
# Twilio's message states, as the delivery report names them, and what the outbox records.
REPORTED = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed"}


def _twiml(response: MessagingResponse) -> Response:
    return Response(str(response), media_type="text/xml")


class SmsWebhooks:
    def __init__(self, settings: Settings):
        self.settings = settings
        token = settings.twilio_auth_token
        self.validator = RequestValidator(token.get_secret_value()) if token else None

    async def _signed_form(self, request: Request) -> dict[str, str] | Response:
        """The form, once its signature checks out; else the refusal to answer with."""
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return error_response(413, "body_too_large", "The webhook body is too large.")
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        base = public_base(self.settings, request.headers, request.url.scheme)
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("x-twilio-signature", "")
        if (
            self.validator is None
            or not signature
            or not self.validator.validate(url, params, signature)
        ):
            log.warning("refused an SMS webhook with a missing or wrong signature")
            return error_response(
                403, "invalid_signature", "X-Twilio-Signature is missing or does not match."
            )
        return params

    async def incoming(self, request: Request) -> Response:
        form = await self._signed_form(request)
        if isinstance(form, Response):
            return form
        sender, sid = form.get("From", ""), form.get("MessageSid", "")
        if not sender or not sid:
            return error_response(422, "validation_failed", "From and MessageSid are required.")
        pool = request.app.state.pool
        word = form.get("Body", "").strip().upper()
        reply = MessagingResponse()
        if word in OPT_OUT:
            await outbox.opt_out(pool, sender)
            log.info("%s opted out of texts", mask_phones(sender))
        elif word in OPT_IN:
            await outbox.opt_in(pool, sender)
            log.info("%s opted back in to texts", mask_phones(sender))
        elif word in HELP:
            phone = self.settings.restaurant_phone or (
                self.settings.sms_from
                if self.settings.sms_from and not self.settings.sms_from.startswith("MG")
                else None
            )
            reply.message(texts.help_reply(self.settings.restaurant_name, phone))
        else:
            await outbox.store_reply(pool, sid, sender, form.get("Body", ""))
            log.info("a text from %s kept for the staff", mask_phones(sender))
        return _twiml(reply)

    async def status(self, request: Request) -> Response:
        form = await self._signed_form(request)
        if isinstance(form, Response):
            return form
        sid = form.get("MessageSid", "")
        if not sid:
            return error_response(422, "validation_failed", "MessageSid is required.")
        state = REPORTED.get(form.get("MessageStatus", ""))
        if state is not None:
            code = form.get("ErrorCode")
            error = f"Twilio reports {form.get('MessageStatus')}" + (
                f" (error {code})" if code else ""
            )
            await outbox.delivery_status(request.app.state.pool, sid, state, error)
        return Response(status_code=204)
