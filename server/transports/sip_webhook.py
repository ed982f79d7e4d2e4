"""`POST /openai/webhook`: OpenAI tells us of an incoming SIP call (`realtime.call.incoming`).

Checked in this order, and nothing is done for a request that fails a check:
1. `OPENAI_WEBHOOK_SECRET` unset: the endpoint is off (404), never open.
2. The signature (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`),
   by the `openai` SDK's `webhooks.unwrap`: headers missing -> 400; a signature that does not
   match, or a timestamp more than 5 minutes away -> 401.
3. A repeated delivery (a `webhook-id` seen before, by any process: `WebhookDeliveries`) is
   answered 200 and dropped.
Then the call is answered in the background (`SipCalls`) and the webhook returns 200 at once:
accepting can take seconds, and OpenAI would take a slow answer for a failed delivery.
"""

from __future__ import annotations

import logging
from typing import Any

from openai import InvalidWebhookSignatureError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.call.switchboard import Switchboard
from server.settings import Settings
from server.transports.sip_call import SipCalls
from server.transports.sip_control import CALL_INCOMING, read_incoming
from server.transports.webhook_deliveries import WebhookDeliveries
from server.web.api import error_response

log = logging.getLogger("server.sip")

WEBHOOK_PATH = "/openai/webhook"
MAX_WEBHOOK_BYTES = 256 * 1024


class OpenAIWebhook:
    """The handler of `POST /openai/webhook`."""

    def __init__(self, settings: Settings, board: Switchboard, calls: SipCalls):
        secret = settings.openai_webhook_secret
        self.secret = secret.get_secret_value() if secret else None
        self.board = board
        self.calls = calls
        self.deliveries = WebhookDeliveries()

    async def handle(self, request: Request) -> Response:
        if self.secret is None:
            return error_response(404, "not_found", "Not Found")
        body = await _body(request)
        if body is None:
            return error_response(413, "body_too_large", "The webhook body is too large.")
        try:
            event: Any = self.board.model.sdk.webhooks.unwrap(
                body, request.headers, secret=self.secret
            )
        except InvalidWebhookSignatureError as exc:
            log.warning("refused a webhook: %s", exc)
            return error_response(401, "invalid_signature", str(exc))
        except ValueError as exc:  # a header missing, or a body that is not JSON
            log.warning("refused a webhook: %s", exc)
            return error_response(400, "invalid_webhook", str(exc))
        event_type = str(getattr(event, "type", "") or "")
        webhook_id = request.headers["webhook-id"]  # present: the signature covers it
        if not await self.deliveries.first(request.app.state.pool, webhook_id, event_type):
            log.info("webhook %s delivered again: already acted on", webhook_id)
            return JSONResponse({"ok": True, "duplicate": True})
        if event_type != CALL_INCOMING:
            log.info("webhook %s: %s is not ours to act on", webhook_id, event_type)
            return JSONResponse({"ok": True, "ignored": event_type})
        data = getattr(event, "data", None)
        incoming = read_incoming(data.model_dump() if data is not None else None)
        if incoming is None:
            return error_response(422, "validation_failed", "The event names no call_id.")
        log.info("sip call %s from %s: answering", incoming.call_id, incoming.caller or "unknown")
        self.calls.answer(incoming)
        return JSONResponse({"ok": True})


async def _body(request: Request) -> bytes | None:
    """The body, or None once it passes `MAX_WEBHOOK_BYTES` (not read further: it is no event)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
