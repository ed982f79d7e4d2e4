"""Phone calls over OpenAI's SIP interface, as the call core's third adapter: one with no audio.

OpenAI answers the carrier's SIP trunk and plays the host's voice to the caller; we accept the
call with our session settings and drive it over a sideband socket (`ModelClient.connect(
call_id=…)`), where the core runs the tool loop, stats and records as on any call. So the
`Transport` here has no caller socket: `receive` waits until the call is over, and `deliver`
only watches the model's events (`SipControl` decides when to hang up or refer).

- `SipApi`: the four control-plane requests (accept, reject, refer, hangup), each bounded by
  `SIP_REQUEST_TIMEOUT_S`, never retried (a caller who hung up makes `accept` answer 404).
- `SipLine`: one call as the core's `Transport`, and its `connect_model`: the first sideband, then
  after a drop a new one with the same call_id; a refused reconnect (404) means the call is over.
- `SipCalls`: answers calls in background tasks (the webhook returns at once), turns a call away
  at capacity (`reject`, SIP 486), and ends them all at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import openai

from server.call.core import CLOSE_NORMAL, CLOSE_RESTART, Call, CallSpec, EndCall
from server.call.model import ModelConnection, ModelUnavailable
from server.call.switchboard import Refused, Switchboard
from server.realtime.instructions import session_update
from server.realtime.session import Action
from server.settings import Settings
from server.transports.sip_control import (
    BUSY,
    AwaitPlayout,
    CallerActive,
    Hangup,
    Incoming,
    Refer,
    SipControl,
)

log = logging.getLogger("server.sip")

ACCEPT_KEYS = (
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "tools",
    "tool_choice",
)
CALL_GONE = frozenset({400, 404, 410})  # a sideband refused with these: the call has ended


class SipApi:
    """OpenAI's SIP control plane (the SDK's `client.realtime.calls`), every request bounded."""

    def __init__(self, sdk: Any, timeout_s: float):
        self.sdk = sdk  # the process's AsyncOpenAI (max_retries=0: a retry is our decision)
        self.timeout_s = timeout_s

    async def accept(self, call_id: str, session: dict[str, Any]) -> None:
        async with asyncio.timeout(self.timeout_s):
            await self.sdk.realtime.calls.accept(
                call_id,
                type="realtime",
                model=session["model"],
                instructions=session["instructions"],
                output_modalities=session["output_modalities"],
                audio=session["audio"],
                tools=session["tools"],
                tool_choice=session["tool_choice"],
                timeout=self.timeout_s,
            )

    async def reject(self, call_id: str, status_code: int) -> None:
        async with asyncio.timeout(self.timeout_s):
            await self.sdk.realtime.calls.reject(
                call_id, status_code=status_code, timeout=self.timeout_s
            )

    async def refer(self, call_id: str, target_uri: str) -> None:
        async with asyncio.timeout(self.timeout_s):
            await self.sdk.realtime.calls.refer(
                call_id, target_uri=target_uri, timeout=self.timeout_s
            )

    async def hangup(self, call_id: str) -> None:
        async with asyncio.timeout(self.timeout_s):
            await self.sdk.realtime.calls.hangup(call_id, timeout=self.timeout_s)


class SipLine:
    """One SIP call as the core's `Transport`; see the module docstring."""

    channel = "sip"
    passthrough = False

    def __init__(self, incoming: Incoming, api: SipApi, model: Any, settings: Settings):
        self.incoming = incoming
        self.call_id = incoming.call_id
        self.api = api
        self.model = model  # the process's ModelClient: opens the sideband
        self.settings = settings
        self.control = SipControl()
        self.call: Call | None = None
        self.over = asyncio.Event()  # the call is over: `receive` returns
        self.end: EndCall | None = None  # how we ended it (None: the caller did)
        self.gone = False  # nothing left to hang up (the caller left, or it was transferred)
        self.sidebands = 0
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    # -- the model side ------------------------------------------------------------------------

    async def connect(self) -> ModelConnection:
        """The call's sideband; after a drop, another one to the same call while it lasts."""
        if self.gone or self.closed:
            raise ModelUnavailable("call_ended", "The phone call has ended.")
        try:
            connection = await self.model.connect(call_id=self.call_id)
        except ModelUnavailable as exc:
            if self.sidebands and exc.status in CALL_GONE:
                log.info("sip call %s is over (sideband refused)", self.call_id)
                self.caller_left()
            raise
        self.sidebands += 1
        if self.sidebands > 1:
            log.info("sip call %s: sideband reconnected", self.call_id)
        return connection

    # -- Transport -------------------------------------------------------------------------------

    def attach(self, call: Call) -> None:
        self.call = call

    async def receive(self) -> str | bytes | None:
        await self.over.wait()
        if self.end is not None:
            raise self.end
        return None

    def deliver(self, text: str) -> list[Action]:
        for outcome in self.control.from_model(text):
            if type(outcome) is CallerActive:
                if self.call is not None:
                    self.call.last_caller_event = time.monotonic()
            elif type(outcome) is AwaitPlayout:
                self._start(self._playout_timeout(outcome.response_id))
            elif type(outcome) is Hangup:
                self._finish(EndCall(CLOSE_NORMAL, outcome.reason))
            elif type(outcome) is Refer:
                self._start(self._refer(outcome.target_uri))
        return []  # nothing goes to a caller socket, and nothing back to the model

    async def send(self, text: str) -> None:
        """Never called: `deliver` gives the core no frames for the caller."""

    async def close(self, code: int, reason: str, error: dict[str, Any] | None) -> None:
        """The call is over for us: hang up unless the caller left or it was transferred."""
        if self.closed:
            return
        self.closed = True
        self.over.set()
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if error is not None:
            log.warning(
                "sip call %s ended: %s", self.call_id, error.get("error", {}).get("message")
            )
        if not self.gone:
            await self.hangup()

    async def hangup(self) -> None:
        self.gone = True
        try:
            await self.api.hangup(self.call_id)
        except openai.NotFoundError:
            log.info("sip call %s was already over", self.call_id)
        except (openai.APIError, TimeoutError) as exc:
            log.warning("hanging up sip call %s failed: %s", self.call_id, exc)
        else:
            log.info("sip call %s hung up", self.call_id)

    # -- endings -------------------------------------------------------------------------------

    def caller_left(self) -> None:
        self.gone = True
        self.over.set()

    def stop(self) -> None:
        """Shutdown: end the call (the caller hears the line close)."""
        if self.call is not None:
            self.call.stop(EndCall(CLOSE_RESTART, "server restarting"))

    def _finish(self, end: EndCall) -> None:
        if self.end is None:
            self.end = end
        self.over.set()

    def _start(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _playout_timeout(self, response_id: str) -> None:
        await asyncio.sleep(self.settings.sip_playout_timeout_s)
        log.info("sip call %s: no playout report; acting anyway", self.call_id)
        for outcome in self.control.playout_timed_out(response_id):
            if type(outcome) is Hangup:
                self._finish(EndCall(CLOSE_NORMAL, outcome.reason))
            elif type(outcome) is Refer:
                await self._refer(outcome.target_uri)

    async def _refer(self, target_uri: str) -> None:
        try:
            await self.api.refer(self.call_id, target_uri)
        except (openai.APIError, TimeoutError) as exc:  # the caller stays with the host
            log.warning("transfer of sip call %s failed: %s", self.call_id, exc)
            if self.call is not None and not self.closed:
                await self.call.say_to_model(
                    "The transfer to a member of staff failed. Apologise briefly and offer to "
                    "help the caller yourself."
                )
            return
        log.info("sip call %s transferred", self.call_id)
        self.gone = True  # the carrier has the call now
        self._finish(EndCall(CLOSE_NORMAL, "call transferred"))


class SipCalls:
    """Answers SIP calls on the switchboard; each runs in a task held here until it ends."""

    def __init__(
        self,
        board: Switchboard,
        settings: Settings,
        tools: Callable[[], list[dict[str, Any]]],
        profile: Callable[[], Any] = lambda: None,
    ):
        self.board = board
        self.settings = settings
        self.tools = tools  # () -> the tools of a phone call's session
        self.profile = profile  # () -> the restaurant's profile for the instructions, or None
        self.tasks: set[asyncio.Task[None]] = set()
        self.lines: set[SipLine] = set()
        self.closing = False

    def api(self) -> SipApi:
        return SipApi(self.board.model.sdk, self.settings.sip_request_timeout_s)

    def answer(self, incoming: Incoming) -> None:
        """Answer in the background: the webhook must not wait for accept (it can take seconds)."""
        task = asyncio.create_task(self._answer(incoming))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, incoming: Incoming) -> None:
        api = self.api()
        call_id = incoming.call_id
        line = SipLine(incoming, api, self.board.model, self.settings)
        spec = CallSpec(
            sid=self.board.new_sid(),
            channel="sip",
            session_update=session_update(
                self.settings,
                self.tools(),
                phone=True,
                caller=incoming.caller,
                audio_format=None,
                profile=self.profile(),
            ),
            connect_model=line.connect,
            caller=incoming.caller,
            peer=f"sip {call_id}",
            greet=True,
            sideband=True,
        )
        if self.closing:
            await self._reject(api, call_id)
            return
        try:
            async with self.board.line():
                await api.accept(call_id, spec.session_update["session"])
        except Refused as refusal:
            log.warning("sip call %s turned away: %s", call_id, refusal.reason)
            await self._reject(api, call_id)
            return
        except openai.NotFoundError:
            log.info("sip call %s: the caller hung up before it was answered", call_id)
            return
        except (openai.APIError, TimeoutError) as exc:
            log.warning("accepting sip call %s failed: %s", call_id, exc)
            return
        log.info("sip call %s accepted", call_id)
        self.lines.add(line)
        try:
            await self.board.run(spec, line)
            if line.tasks:  # a transfer under way finishes (bounded by its own timeout)
                await asyncio.gather(*line.tasks, return_exceptions=True)
        finally:
            self.lines.discard(line)

    async def _reject(self, api: SipApi, call_id: str) -> None:
        try:
            await api.reject(call_id, BUSY)
        except (openai.APIError, TimeoutError) as exc:
            log.info("rejecting sip call %s failed: %s", call_id, exc)

    async def close(self) -> None:
        """End every SIP call of this process (bounded by SHUTDOWN_GRACE_S), then stop."""
        self.closing = True
        for line in list(self.lines):
            line.stop()
        if self.tasks:
            _, stuck = await asyncio.wait(self.tasks, timeout=self.settings.shutdown_grace_s)
            for task in stuck:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*stuck, return_exceptions=True)
