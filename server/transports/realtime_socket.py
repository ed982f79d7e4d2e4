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

from server.access.admission import Admission, Refusal
from server.call.core import CallSpec
from server.call.switchboard import Refused, Switchboard
from server.realtime.session import Action, ToClient
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
    """The ASGI app of `/v1/realtime`: who may call (`Admission`), then one call on the board."""

    def __init__(
        self, board: Switchboard, settings: Settings, session_update: Any, admission: Admission
    ):
        self.board = board
        self.settings = settings
        self.session_update = session_update  # () -> the server's session.update for a call
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        transport = RealtimeSocket(websocket, receive, send)
        async with self.admission.admit(websocket, also=self._capacity) as refusal:
            if refusal is not None:  # logged by admission, with the client and its Origin
                await transport.close(refusal.code, refusal.reason, refusal.error)
                return
            spec = CallSpec(
                sid=self.board.new_sid(),
                channel=transport.channel,
                session_update=self.session_update(),
                connect_model=self.board.connect_model,
                peer=_peer(websocket),
            )
            # No await since the capacity check: the call is on the board before another
            # call can be admitted.
            await self.board.run(spec, transport)

    def _capacity(self) -> Refusal | None:
        try:
            self.board.check_capacity()
        except Refused as refused:
            return Refusal(refused.code, refused.error, refused.reason)
        return None


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "?"
