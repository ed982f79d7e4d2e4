"""`/v1/realtime`: the OpenAI Realtime protocol to the caller (the page, the demo, SDK clients).

The thinnest adapter: the caller already speaks the model's protocol, so its events go to the
core's checks as they are and the model's events come back unchanged (`passthrough`). The socket
is read and written through the raw ASGI `receive`/`send` that Starlette hands every endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from server import access
from server.call.core import CallSpec
from server.call.switchboard import Refused, Switchboard
from server.realtime import protocol as p
from server.realtime.session import CLOSE_POLICY, Action, ToClient
from server.settings import Settings

log = logging.getLogger("server.realtime")

CLOSING_SEND_S = 2.0  # the last error event and close frame, to a caller that may not read


class RealtimeSocket:
    """One caller's `/v1/realtime` WebSocket as the core's `Transport`."""

    passthrough = True

    def __init__(self, websocket: WebSocket, receive: Receive, send: Send):
        self.websocket = websocket
        self._receive, self._send = receive, send
        # Browsers always send Origin; the SDK and other programs do not.
        self.channel = "browser" if websocket.headers.get("origin") else "sdk"
        self.closed = False

    async def receive(self) -> str | bytes | None:
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is not None:
            return text
        return message.get("bytes") or b""

    def attach(self, call: Any) -> None:
        pass  # starts nothing of its own

    def deliver(self, text: str) -> list[Action]:
        return [ToClient(text)]

    async def send(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str, error: dict[str, Any] | None) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSING_SEND_S):
                if error is not None:
                    await self.send(orjson.dumps(error).decode())
                await self.websocket.close(code, reason)


class RealtimeEndpoint:
    """The ASGI app of `/v1/realtime`: who may call, then one call on the switchboard."""

    def __init__(self, board: Switchboard, settings: Settings, session_update: Any):
        self.board = board
        self.settings = settings
        self.session_update = session_update  # () -> the server's session.update for a call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        transport = RealtimeSocket(websocket, receive, send)
        peer = _peer(websocket)
        try:
            self._check(websocket)
            self.board.check_capacity()
        except Refused as refusal:
            log.warning("refused a call from %s: %s", peer, refusal.reason)
            await transport.close(refusal.code, refusal.reason, refusal.error)
            return
        spec = CallSpec(
            sid=self.board.new_sid(),
            channel=transport.channel,
            session_update=self.session_update(),
            connect_model=self.board.connect_model,
            peer=peer,
        )
        await self.board.run(spec, transport)

    def _check(self, websocket: WebSocket) -> None:
        settings = self.settings
        origin = websocket.headers.get("origin")
        if not access.origin_ok(origin, settings):
            error = p.error_event("origin_not_allowed", "This page's origin may not connect.")
            log.warning("a page from origin %r may not connect", origin)
            raise Refused(CLOSE_POLICY, error, "origin not allowed")
        token = access.socket_token(websocket.headers, websocket.query_params)
        if not access.token_ok(token, settings):
            error = p.error_event("unauthorized", "A valid access token is required.")
            raise Refused(CLOSE_POLICY, error, "missing or invalid access token")


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "?"
