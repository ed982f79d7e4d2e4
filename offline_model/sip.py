"""The SIP side of the offline model: simulated phone calls, their control plane and sideband.

With OpenAI's SIP interface a carrier sends the call's audio to OpenAI, OpenAI posts a signed
`realtime.call.incoming` webhook to the application, and the application answers with
`POST /v1/realtime/calls/{call_id}/accept|reject|refer|hangup` and drives the call over a
sideband socket, `/v1/realtime?call_id=…`, that carries events but no audio. This module plays
OpenAI's part without a key or a carrier, so tests and `python -m demo --sip` can run a
phone call end to end:

- `SipPlane.place_call` invents a call, signs the webhook per Standard Webhooks (HMAC-SHA256 over
  ``id.timestamp.body`` with the base64-decoded ``whsec_`` secret; `webhooks`) and posts it.
- The control plane listens on its own port (`SipPlane.url`): the `websockets` server that serves
  the sockets reads no request bodies, and accept, reject and refer carry one. Give the SDK this
  URL as ``base_url`` and the model's URL as ``websocket_base_url``.
- A call (`sip_call.SipCall`) owns its conversation, so a sideband that drops and reconnects
  finds the call as it was; its outbox sends playout events instead of audio.
- `say` stands in for the caller's voice (a typed turn the offline dialog understands), and
  `hang_up` and `drop` for the caller leaving and for a network fault.

The names the demo, the benchmarks and the tests use (`SipCall`, `new_secret`, `sign`,
`incoming_event`, `post_webhook`) are importable from here too (`__all__`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from protocol import realtime as p

from . import events
from .conversation import Conversation
from .sip_call import SidebandOutbox, SipCall
from .stats import Stats
from .webhooks import HTTP_TIMEOUT_S, incoming_event, new_secret, post_webhook, sign

__all__ = [
    "SidebandOutbox",
    "SipCall",
    "SipPlane",
    "incoming_event",
    "new_secret",
    "post_webhook",
    "sign",
]

log = logging.getLogger(__name__)

CALLS_PATH = "/v1/realtime/calls/"
VERBS = ("accept", "reject", "refer", "hangup")
MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
PCMU = {"type": "audio/pcmu"}  # what a SIP trunk carries; the accept may say otherwise


class SipPlane:
    """Simulated calls and OpenAI's SIP control plane; see the module docstring."""

    def __init__(
        self,
        *,
        host: str,
        api_key: str | None,
        stats: Stats,
        today: Callable[[], date],
        pace: float,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.stats = stats
        self.today = today
        self.pace = pace
        self.calls: dict[str, SipCall] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._http, self.host, 0, limit=MAX_HEAD)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        """The control plane's base URL for the SDK (``http://HOST:PORT/v1``)."""
        if self._server is None:
            raise RuntimeError("the SIP control plane is not running")
        port = self._server.sockets[0].getsockname()[1]
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "localhost") else self.host
        return f"http://{host}:{port}/v1"

    # -- simulated callers ------------------------------------------------------------------------

    async def place_call(
        self,
        webhook_url: str,
        secret: str,
        *,
        caller: str = "+6591234567",
        to: str = "+6560000000",
    ) -> tuple[SipCall, int]:
        """Ring the server: a new call and its signed webhook; returns the call and the status."""
        call = self.new_call(caller)
        body = orjson.dumps(incoming_event(call.call_id, caller, to))
        status, _ = await post_webhook(webhook_url, body, secret=secret)
        return call, status

    def new_call(self, caller: str = "+6591234567") -> SipCall:
        """A ringing call, not yet announced (tests post its webhook themselves)."""
        call = SipCall(events.new_id("rtc"), caller)
        self.calls[call.call_id] = call
        return call

    def say(self, call_id: str, text: str) -> None:
        """The caller speaks (typed): a user turn, then the model answers as VAD would make it."""
        call = self.calls[call_id]
        item = {
            "type": p.ITEM_CREATE,
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
        call.inbox.put_nowait(orjson.dumps(item).decode())
        call.inbox.put_nowait(orjson.dumps({"type": p.RESPONSE_CREATE}).decode())

    async def hang_up(self, call_id: str) -> None:
        """The caller hangs up: the call ends and its sideband closes."""
        await self._end(self.calls[call_id], "caller")

    async def drop(self, call_id: str) -> None:
        """A network fault: the sideband closes abnormally, the call itself goes on."""
        call = self.calls[call_id]
        for ws in list(call.sockets):
            await ws.close(1011, "sideband dropped")

    async def _end(self, call: SipCall, by: str) -> None:
        call.state, call.ended_by = "ended", by
        call.changed()
        for ws in list(call.sockets):
            await ws.close(1000, "call ended")

    # -- the sideband (wired into the model's websockets server) ----------------------------------

    def sideband_refusal(self, connection: ServerConnection, request: Request) -> Response | None:
        """The handshake of ``/v1/realtime?call_id=…``: the key, and a call that is live."""
        call_id = (parse_qs(urlsplit(request.path).query).get("call_id") or [""])[0]
        authorization = request.headers.get("Authorization")
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            return _respond(connection, 401, "invalid_api_key", "Incorrect API key provided.")
        call = self.calls.get(call_id)
        if call is None or call.state != "accepted":
            return _respond(connection, 404, "call_not_found", f"No live call {call_id!r}.")
        return None

    def call_of(self, ws: ServerConnection) -> SipCall | None:
        """The call a sideband socket belongs to; None for an ordinary model session."""
        path = ws.request.path if ws.request is not None else ""
        call_id = (parse_qs(urlsplit(path).query).get("call_id") or [""])[0]
        return self.calls.get(call_id) if call_id else None

    def outbox(self, call: SipCall) -> SidebandOutbox:
        return SidebandOutbox(call)

    async def frames(self, call: SipCall, ws: ServerConnection) -> AsyncIterator[str | bytes]:
        """The sideband's client events merged with the caller's turns, until it closes."""
        call.sockets.add(ws)
        call.sidebands += 1
        call.changed()
        receiving = asyncio.ensure_future(ws.recv())
        turn = asyncio.ensure_future(call.inbox.get())
        try:
            while True:
                await asyncio.wait({receiving, turn}, return_when=asyncio.FIRST_COMPLETED)
                if turn.done():
                    yield turn.result()
                    turn = asyncio.ensure_future(call.inbox.get())
                if receiving.done():
                    raw = receiving.result()  # raises ConnectionClosed at the end
                    call.client_events.append(_type_of(raw))
                    call.changed()
                    yield raw
                    receiving = asyncio.ensure_future(ws.recv())
        finally:
            for task in (receiving, turn):
                task.cancel()
            await asyncio.gather(receiving, turn, return_exceptions=True)
            call.sockets.discard(ws)
            call.changed()

    # -- the control plane (plain HTTP) -----------------------------------------------------------

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body = 400, _error("invalid_request", "Malformed request.")
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request_line, *lines = head.split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in lines:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if length > MAX_BODY:
                    status, body = 413, _error("too_large", "Request body too large.")
                else:
                    payload = await reader.readexactly(length)
                    status, body = await self._control(method, target, headers, payload)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        except ConnectionError:
            return
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
        response = (
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        with contextlib.suppress(ConnectionError):
            writer.write(response)
            await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def _control(
        self, method: str, target: str, headers: dict[str, str], payload: bytes
    ) -> tuple[int, bytes]:
        path = urlsplit(target).path
        if method != "POST" or not path.startswith(CALLS_PATH):
            return 404, _error("not_found", f"No route {method} {path}.")
        call_id, _, verb = path[len(CALLS_PATH) :].partition("/")
        if verb not in VERBS:
            return 404, _error("not_found", f"No route {method} {path}.")
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, _error("invalid_api_key", "Incorrect API key provided.")
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            return 400, _error("invalid_json", "The body is not JSON.")
        if not isinstance(body, dict):
            return 400, _error("invalid_json", "The body must be an object.")
        call = self.calls.get(call_id)
        if call is not None:
            call.requests.append(verb)
            call.changed()
        if call is None or call.state in ("ended", "rejected"):
            return 404, _error("call_not_found", f"Call {call_id!r} not found.")
        if verb == "accept":
            return self._accept(call, body)
        if verb == "reject":
            if call.state != "ringing":
                return 400, _error("invalid_state", "Only a ringing call can be rejected.")
            call.state, call.reject_status = "rejected", int(body.get("status_code") or 603)
            call.changed()
            return 200, b""
        if call.state != "accepted":
            return 400, _error("invalid_state", f"Call {call_id!r} is not answered.")
        if verb == "refer":
            target_uri = body.get("target_uri")
            if not isinstance(target_uri, str) or not target_uri:
                return 400, _error("missing_required_parameter", "target_uri is required.")
            call.refer_to = target_uri
            await self._end(call, "refer")
            return 200, b""
        await self._end(call, "hangup")
        return 200, b""

    def _accept(self, call: SipCall, body: dict[str, Any]) -> tuple[int, bytes]:
        if call.state != "ringing":
            return 400, _error("invalid_state", "The call was already answered.")
        if body.get("type") != "realtime":
            return 400, _error("invalid_value", "type must be 'realtime'.")
        conversation = Conversation(
            model=str(body.get("model") or "gpt-realtime"),
            stats=self.stats,
            today=self.today,
            pace=self.pace,
        )
        session = {"audio": {"input": {"format": PCMU}, "output": {"format": PCMU}}}
        settings = events.deep_merge(session, body)
        for out in conversation.handle({"type": p.SESSION_UPDATE, "session": settings}):
            if isinstance(out, dict) and out.get("type") == p.ERROR:
                return 400, orjson.dumps({"error": out["error"]})
        call.state, call.accepted, call.conversation = "accepted", body, conversation
        call.changed()
        return 200, b""


def _type_of(raw: str | bytes) -> str:
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "?"
    return str(event.get("type")) if isinstance(event, dict) else "?"


def _error(code: str, message: str) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    )


def _respond(connection: ServerConnection, status: int, code: str, message: str) -> Response:
    response = connection.respond(status, _error(code, message).decode())
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response
