"""A fake Twilio and a scripted model, for the phone tests.

- `FakeTwilioStream`: Twilio's side of a media stream (connected, start, media, mark, dtmf, stop)
  over a real WebSocket, keeping every frame the server sends.
- `sign_webhook`: what Twilio puts in X-Twilio-Signature (the `twilio` library computes it).
- `FakeTwilioRest`: Twilio's REST API on loopback, recording the requests it gets.
- `ScriptedModel`: a Realtime model the test drives event by event (for exact barge-in and
  end-of-call sequences), at `url` for OPENAI_BASE_URL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import orjson
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator
from websockets.asyncio.server import ServerConnection, serve

from tests.conftest import serve_asgi

TIMEOUT = 10


def sign_webhook(auth_token: str, url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, params))


def mulaw_frame(n: int, size: int = 160) -> str:
    """A recognisable 20 ms μ-law frame, base64 as Twilio sends it."""
    return base64.b64encode(bytes((n + i) % 256 for i in range(size))).decode()


class FakeTwilioStream:
    """Twilio's end of one media stream."""

    def __init__(self, ws: websockets.ClientConnection, stream_sid: str):
        self.ws = ws
        self.stream_sid = stream_sid
        self.frames: list[dict[str, Any]] = []
        self._next = 0
        self.chunk = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def start(
        self, call_sid: str, parameters: dict[str, str], account_sid: str = "AC" + "0" * 32
    ) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": self.stream_sid,
                "start": {
                    "streamSid": self.stream_sid,
                    "accountSid": account_sid,
                    "callSid": call_sid,
                    "tracks": ["inbound"],
                    "customParameters": parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )

    async def media(self, payload: str) -> None:
        self.chunk += 1
        await self.send(
            {
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {
                    "track": "inbound",
                    "chunk": str(self.chunk),
                    "timestamp": str(self.chunk * 20),
                    "payload": payload,
                },
            }
        )

    async def mark(self, name: str) -> None:
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def dtmf(self, digit: str) -> None:
        await self.send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def stop(self) -> None:
        await self.send({"event": "stop", "streamSid": self.stream_sid, "stop": {}})

    async def next(self) -> dict[str, Any]:
        """The next frame the server sent, in order."""
        while self._next >= len(self.frames):
            async with asyncio.timeout(TIMEOUT):
                self.frames.append(orjson.loads(await self.ws.recv()))
        frame = self.frames[self._next]
        self._next += 1
        return frame

    async def until(self, event: str) -> dict[str, Any]:
        while True:
            frame = await self.next()
            if frame["event"] == event:
                return frame

    async def closed(self) -> int:
        """Wait for the server to close the stream; its close code."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                while True:
                    self.frames.append(orjson.loads(await self.ws.recv()))
        assert self.ws.close_code is not None
        return self.ws.close_code


@contextlib.asynccontextmanager
async def twilio_stream(ws_url: str, stream_sid: str = "MZ0001") -> AsyncIterator[FakeTwilioStream]:
    async with websockets.connect(f"{ws_url}/twilio/media-stream", max_size=None) as ws:
        yield FakeTwilioStream(ws, stream_sid)


@contextlib.asynccontextmanager
async def serve_post(path: str, handler: Any) -> AsyncIterator[str]:
    """One POST route of Twilio's REST API on a loopback port; yields its base URL."""
    app = Starlette(routes=[Route(path, handler, methods=["POST"])])
    async with serve_asgi(app, lifespan="off") as (port, _):
        yield f"http://127.0.0.1:{port}"


class FakeTwilioRest:
    """Twilio's REST API for calls: records each request, answers like Twilio."""

    def __init__(self, status: int = 200):
        self.requests: list[dict[str, Any]] = []
        self.status = status
        self.got = asyncio.Event()
        self.url = ""

    async def update_call(self, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        self.requests.append(
            {
                "path": request.url.path,
                "form": form,
                "authorization": request.headers.get("authorization", ""),
            }
        )
        self.got.set()
        sid = request.path_params["call_sid"]
        return JSONResponse({"sid": sid, "status": "in-progress"}, status_code=self.status)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeTwilioRest]:
        path = "/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"
        async with serve_post(path, self.update_call) as self.url:
            yield self


class ModelSession:
    """One connection to the scripted model, as the test sees it."""

    def __init__(self, ws: ServerConnection):
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self.closed = asyncio.Event()

    async def say(self, kind: str, **fields: Any) -> None:
        await self.ws.send(orjson.dumps({"type": kind, "event_id": "evt", **fields}).decode())

    async def say_text(self, text: str) -> None:
        """A frame exactly as written (another key order, other spacing)."""
        await self.ws.send(text)

    async def until(self, kind: str, after: int = 0) -> dict[str, Any]:
        """The first event of `kind` received (at index >= `after`)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                for event in self.received[after:]:
                    if event.get("type") == kind:
                        return event
                self._arrived.clear()
                await self._arrived.wait()

    def kinds(self) -> list[str]:
        return [e.get("type", "") for e in self.received]


class ScriptedModel:
    """A Realtime model that says only what the test tells it to."""

    def __init__(self) -> None:
        self.sessions: list[ModelSession] = []
        self._new = asyncio.Event()
        self.url = ""

    async def _serve(self, ws: ServerConnection) -> None:
        session = ModelSession(ws)
        self.sessions.append(session)
        self._new.set()
        await session.say("session.created", session={"id": f"sess_{len(self.sessions)}"})
        try:
            async for text in ws:
                session.received.append(orjson.loads(text))
                session._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            session.closed.set()

    async def session(self, index: int = 0) -> ModelSession:
        async with asyncio.timeout(TIMEOUT):
            while len(self.sessions) <= index:
                self._new.clear()
                await self._new.wait()
        return self.sessions[index]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedModel]:
        async with serve(self._serve, "127.0.0.1", 0, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"http://127.0.0.1:{port}/v1"
            yield self


class FakeTwilioMessages:
    """Twilio's Messages API (`POST .../Messages.json`) on loopback, as the `twilio` library
    sees it: 201 and a message resource, or the answer `script` says for the next request
    (an HTTP status to fail with, or "hang": never answer until `release()`)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.script: list[int | str] = []
        self.url = ""
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()

    async def create(self, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        form["_account"] = request.path_params["account_sid"]
        form["_authorization"] = request.headers.get("authorization", "")
        action = self.script.pop(0) if self.script else 201
        async with self._changed:
            self.requests.append(form)
            self._changed.notify_all()
        if action == "hang":
            await self._release.wait()
            action = 201
        status = int(action)
        if status != 201:
            code, message = (20500, "try later") if status >= 429 else (21211, "invalid 'To'")
            body = {"code": code, "message": message, "status": status, "more_info": ""}
            return JSONResponse(body, status_code=status)
        sid = f"SM{len(self.requests):032x}"
        return JSONResponse(
            {"sid": sid, "status": "queued", "to": form.get("To"), "body": form.get("Body")},
            status_code=201,
        )

    def release(self) -> None:
        self._release.set()

    def bodies(self, to: str | None = None) -> list[str]:
        return [r["Body"] for r in self.requests if to is None or r["To"] == to]

    async def received(self, count: int, within_s: float = TIMEOUT) -> list[dict[str, str]]:
        """Wait until `count` requests in all have arrived."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeTwilioMessages]:
        path = "/2010-04-01/Accounts/{account_sid}/Messages.json"
        async with serve_post(path, self.create) as self.url:
            try:
                yield self
            finally:
                self.release()
