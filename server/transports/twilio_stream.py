"""`/twilio/media-stream`: a phone call carried by Twilio Media Streams, as the core's Transport.

The stream opens with `connected` and `start`; only then is the call known (its ids, the
`<Parameter>`s of our TwiML). With `TWILIO_AUTH_TOKEN` set, the stream token must be valid for
this call or the socket is closed (1008) before any model session opens. Then the call runs on
the switchboard like any other: `TwilioMedia` (sans I/O) translates both ways, this module reads
and writes the socket and makes the one REST request a transfer needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from server.call.core import CLOSE_NORMAL, Call, CallSpec, EndCall
from server.call.switchboard import Refused, Switchboard
from server.realtime.instructions import PCMU, session_update
from server.realtime.session import CLOSE_POLICY, Action, Close, ToClient, ToModel
from server.settings import Settings
from server.transports.twilio_media import (
    MULAW_BYTES_PER_MS,
    Invalid,
    Started,
    Stopped,
    Transfer,
    TwilioMedia,
)
from server.transports.twilio_webhook import read_stream_token

log = logging.getLogger("server.twilio")

START_TIMEOUT_S = 10.0  # `connected` and `start` arrive at once; anything slower is not Twilio
CLOSING_S = 2.0
MAX_MESSAGE_CHARS = 64 * 1024  # Twilio's media frames are ~300 characters


class TwilioRest:
    """The one request we make to Twilio's REST API: redirect a live call to a number."""

    def __init__(self, settings: Settings):
        self.settings = settings

    async def transfer(self, account_sid: str, call_sid: str, number: str) -> None:
        token = self.settings.twilio_auth_token
        if token is None:
            raise RuntimeError("TWILIO_AUTH_TOKEN is not set")
        http = AsyncTwilioHttpClient(timeout=self.settings.twilio_timeout_s)
        client = Client(account_sid, token.get_secret_value(), http_client=http)
        if self.settings.twilio_api_base_url:
            client.api.base_url = self.settings.twilio_api_base_url
        dial = VoiceResponse()
        dial.dial(number)
        try:
            async with asyncio.timeout(self.settings.twilio_timeout_s):
                await client.calls(call_sid).update_async(twiml=str(dial))
        finally:
            await http.close()


class TwilioStream:
    """One media stream as the call core's `Transport`."""

    channel = "phone"
    passthrough = False

    def __init__(
        self,
        receive: Receive,
        send: Send,
        websocket: WebSocket,
        media: TwilioMedia,
        started: Started,
        rest: TwilioRest,
    ):
        self._receive, self._send = receive, send
        self.websocket = websocket
        self.media = media
        self.started = started
        self.rest = rest
        self.inbox: deque[str] = deque()  # model events decided from one Twilio message
        self.call: Call | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def attach(self, call: Call) -> None:
        self.call = call

    async def receive(self) -> str | bytes | None:
        while not self.inbox:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is None or len(text) > MAX_MESSAGE_CHARS:
                log.warning("ignored a message Twilio would not send")
                continue
            for outcome in self.media.from_twilio(text):
                if type(outcome) is ToModel:
                    self.inbox.append(outcome.text)
                elif type(outcome) is Stopped:
                    if outcome.reason == "caller hung up":
                        return None
                    raise EndCall(CLOSE_NORMAL, outcome.reason)
                elif type(outcome) is Transfer:
                    self._transfer(outcome.number)
                elif type(outcome) is Invalid:
                    log.warning("ignored a Twilio message: %s", outcome.message)
        return self.inbox.popleft()

    def deliver(self, text: str) -> list[Action]:
        actions: list[Action] = []
        for outcome in self.media.from_model(text):
            if type(outcome) is ToClient or type(outcome) is ToModel:
                actions.append(outcome)
            elif type(outcome) is Stopped:
                actions.append(Close(CLOSE_NORMAL, outcome.reason))
            elif type(outcome) is Transfer:
                self._transfer(outcome.number)
            elif type(outcome) is Invalid:
                log.warning("model event not carried to the phone: %s", outcome.message)
        return actions

    async def send(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str, error: dict[str, Any] | None) -> None:
        """Closing the stream ends the call: our TwiML has nothing after `<Connect>`."""
        if self.closed:
            return
        self.closed = True
        if error is not None:
            log.warning("phone call ended: %s", error.get("error", {}).get("message", reason))
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSING_S):
                await self.websocket.close(code, reason)

    def _transfer(self, number: str) -> None:
        task = asyncio.create_task(self._transfer_now(number))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _transfer_now(self, number: str) -> None:
        started = self.started
        try:
            await self.rest.transfer(started.account_sid, started.call_sid, number)
        except Exception as exc:  # the caller stays with the host, who is told
            log.warning("transfer of %s failed: %s", started.call_sid, exc)
            if self.call is not None:
                await self.call.say_to_model(
                    "The transfer to a member of staff failed. Apologise briefly and offer to "
                    "help the caller yourself."
                )
            return
        log.info("call %s transferred", started.call_sid)
        # Twilio now runs the <Dial>: it stops this stream, and the call's end follows.


class TwilioStreamEndpoint:
    """The ASGI app of `/twilio/media-stream`."""

    def __init__(
        self, board: Switchboard, settings: Settings, tools: Any, profile: Any = lambda: None
    ):
        self.board = board
        self.settings = settings
        self.tools = tools  # (caller) -> the tools list of a phone call's session
        self.profile = profile  # () -> the restaurant's profile for the instructions, or None
        token = settings.twilio_auth_token
        self.auth_token = token.get_secret_value() if token else None
        self.rest = TwilioRest(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        media = TwilioMedia(chunk_bytes=self.settings.model_audio_chunk_ms * MULAW_BYTES_PER_MS)
        started = await self._wait_for_start(receive, media)
        if started is None:
            await _close(websocket, CLOSE_POLICY, "expected Twilio's start message")
            return
        caller = started.parameters.get("caller") or None
        if self.auth_token is not None:
            try:
                claims = read_stream_token(
                    self.auth_token,
                    started.parameters.get("token", ""),
                    started.call_sid,
                    time.time(),
                )
            except ValueError as exc:
                log.warning("refused a media stream for %s: token %s", started.call_sid, exc)
                await _close(websocket, CLOSE_POLICY, "invalid stream token")
                return
            caller = str(claims.get("from") or "") or None  # the signed number, not the parameter
        try:
            self.board.check_capacity()
        except Refused as refusal:
            log.warning("refused a media stream: %s", refusal.reason)
            await _close(websocket, refusal.code, refusal.reason)
            return
        transport = TwilioStream(receive, send, websocket, media, started, self.rest)
        spec = CallSpec(
            sid=self.board.new_sid(),
            channel="phone",
            session_update=session_update(
                self.settings,
                self.tools(),
                phone=True,
                caller=caller,
                audio_format=PCMU,
                profile=self.profile(),
            ),
            connect_model=self.board.connect_model,
            caller=caller,
            peer=f"twilio {started.call_sid}",
            greet=True,
        )
        await self.board.run(spec, transport)
        if transport.tasks:  # a transfer under way finishes (bounded by its own timeout)
            await asyncio.gather(*transport.tasks, return_exceptions=True)

    async def _wait_for_start(self, receive: Receive, media: TwilioMedia) -> Started | None:
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    message = await receive()
                    text = message.get("text")
                    if message["type"] == "websocket.disconnect":
                        return None
                    if text is None or len(text) > MAX_MESSAGE_CHARS:
                        return None
                    for outcome in media.from_twilio(text):  # `connected` gives nothing
                        if type(outcome) is Started:
                            return outcome
                        log.warning("a media stream began without start: %s", outcome)
                        return None
        except TimeoutError:
            return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSING_S):
            await websocket.close(code, reason)
