"""The SIP side of the offline model: simulated phone calls, their control plane and sideband.

With OpenAI's SIP interface a carrier sends the call's audio to OpenAI, OpenAI posts a signed
`realtime.call.incoming` webhook to the application, and the application answers with
`POST /v1/realtime/calls/{call_id}/accept|reject|refer|hangup` and drives the call over a
sideband socket, `/v1/realtime?call_id=…`, that carries events but no audio. This module plays
OpenAI's part without a key or a carrier, so tests and `python -m demo --sip` can run a
phone call end to end:

- `SipPlane.place_call` invents a call, signs the webhook per Standard Webhooks (HMAC-SHA256 over
  ``id.timestamp.body`` with the base64-decoded ``whsec_`` secret) and posts it to the server.
- The control plane listens on its own port (`SipPlane.url`): the `websockets` server that serves
  the sockets reads no request bodies, and accept, reject and refer carry one. Give the SDK this
  URL as ``base_url`` and the model's URL as ``websocket_base_url``.
- A call owns its conversation, so a sideband that drops and reconnects finds the call as it was.
  On the sideband, audio deltas are not sent (the audio went to the caller over RTP); the
  `output_audio_buffer.started/stopped` events say when the host's words began and finished.
- `say` stands in for the caller's voice (a typed turn the offline dialog understands), and
  `hang_up` and `drop` for the caller leaving and for a network fault.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from protocol import realtime as p

from . import events
from .conversation import Conversation
from .outbox import Outbox
from .stats import Stats

log = logging.getLogger(__name__)

CALLS_PATH = "/v1/realtime/calls/"
VERBS = ("accept", "reject", "refer", "hangup")
MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
HTTP_TIMEOUT_S = 10.0
AUDIO_DELTA = b'{"type":"response.output_audio.delta"'
PCMU = {"type": "audio/pcmu"}  # what a SIP trunk carries; the accept may say otherwise


# -- Standard Webhooks ---------------------------------------------------------------------------


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


# -- one call -------------------------------------------------------------------------------------


@dataclass
class SipCall:
    """One simulated phone call, as OpenAI sees it."""

    call_id: str
    caller: str
    state: str = "ringing"  # ringing -> accepted -> ended, or ringing -> rejected / ended
    accepted: dict[str, Any] | None = None  # the accept's session settings
    requests: list[str] = field(default_factory=list)  # control-plane verbs, in order
    reject_status: int | None = None
    refer_to: str | None = None
    ended_by: str | None = None  # "hangup", "refer" or "caller"
    conversation: Conversation | None = None
    sidebands: int = 0  # sideband sockets opened so far
    sockets: set[ServerConnection] = field(default_factory=set)
    client_events: list[str] = field(default_factory=list)  # types received on the sideband
    server_events: list[str] = field(default_factory=list)  # types sent on the sideband
    transcripts: list[str] = field(default_factory=list)  # what the host said
    inbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # the caller's turns
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, predicate: Callable[[SipCall], bool]) -> None:
        """Until `predicate(call)` holds (callers bound it with `asyncio.timeout`)."""
        while not predicate(self):
            await self._changed.wait()

    @property
    def quiet(self) -> bool:
        """No response under way: a simulated caller may speak without talking over the host."""
        return self.conversation is not None and self.conversation.active is None


class SidebandOutbox(Outbox):
    """A sideband's outbox: no audio (it went to the caller), playout events instead."""

    def __init__(self, call: SipCall) -> None:
        super().__init__()
        self.call = call
        self.playing: str | None = None  # the response whose audio is playing

    def put(self, frame: bytes | str) -> None:
        raw = frame.encode() if isinstance(frame, str) else frame
        if raw.startswith(AUDIO_DELTA):
            if self.playing is None:
                self.playing = str(orjson.loads(raw).get("response_id", ""))
                self._emit(events.event("output_audio_buffer.started", response_id=self.playing))
            return
        event = orjson.loads(raw)
        kind = str(event.get("type"))
        super().put(frame)
        self.call.server_events.append(kind)
        if kind in (p.OUTPUT_TRANSCRIPT_DONE, "response.output_text.done"):
            self.call.transcripts.append(str(event.get("transcript") or event.get("text") or ""))
        elif kind == p.RESPONSE_DONE and self.playing is not None:
            # The pace of the offline model's audio is the pace it "plays" at: done is heard.
            self._emit(events.event("output_audio_buffer.stopped", response_id=self.playing))
            self.playing = None
        self.call.changed()

    def _emit(self, event: dict[str, Any]) -> None:
        super().put(orjson.dumps(event))
        self.call.server_events.append(event["type"])


# -- the plane ------------------------------------------------------------------------------------


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
