"""The call core: what every call has, whatever carries it.

A transport adapter (the `/v1/realtime` socket, a Twilio media stream, a SIP sideband) turns its
handshake into a `CallSpec` and itself into a `Transport`, then hands both to `Call.run`. The core
owns the rest: the model connection (open, replace after a drop with the conversation replayed,
rotate before the model's session cap), the tool loop (tasks with deadlines, one
`response.create` after all outputs, a `call_id` runs once — decided by the pure `RelaySession`),
stats, limits, watchdogs and the call's end. Split by idea: `spec` (the call before it runs, how
it ends), `model_life` (replacing and rotating the model session), `watchdogs`, and this module
(the read paths, the ordered writes, tools, the end).

Each socket has one read path (a task) and one ordered write path (`Outbound`): whatever is
decided — by the caller's reader, the model's reader or a tool task — is appended to the
destination's outbound at once, in the order decided, then written. A slow reader therefore
slows its own call and nothing else; the watchdog lets go of a peer that stopped for good.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from protocol import realtime as p
from server.call.model import ModelClosed, ModelConnection, ModelUnavailable
from server.call.model_life import ModelLife
from server.call.outbound import Outbound
from server.call.spec import (
    CLOSE_NORMAL,
    CLOSE_RESTART,
    FATAL_MODEL_CLOSES,
    CallerGone,
    CallSpec,
    ConnectFn,
    EndCall,
    server_error,
    silence_for,
)
from server.call.watchdogs import Watchdogs
from server.realtime.session import (
    CLOSE_INTERNAL,
    Action,
    Close,
    Note,
    RelaySession,
    RunTool,
    ToClient,
    ToModel,
)
from server.settings import Settings

log = logging.getLogger("server.call")

__all__ = [  # re-exported: the adapters and the switchboard import them from here
    "CLOSE_NORMAL",
    "CLOSE_RESTART",
    "CallSpec",
    "CallerGone",
    "ConnectFn",
    "EndCall",
    "server_error",
]


class Transport(Protocol):
    """What a transport adapter offers the core. Carrier chores stay in the adapter."""

    channel: str  # "browser", "sdk", "phone", "sip": for logs, records and metrics
    passthrough: bool  # True: model and page events go to the caller unchanged

    async def receive(self) -> str | bytes | None:
        """The caller's next Realtime client event (text); None once the caller has gone.

        May raise `EndCall` when the transport itself ends the call (a goodbye has played).
        """
        ...

    def deliver(self, text: str) -> list[Action]:
        """A model or page event, translated: frames for the caller, events for the model."""
        ...

    async def send(self, text: str) -> None:
        """Write one frame to the caller (called by the core's ordered write path only)."""
        ...

    async def close(self, code: int, reason: str, error: dict[str, Any] | None) -> None:
        """End the caller's side (with `error` first, if any); bounded, safe to call twice."""
        ...

    def attach(self, call: Call) -> None:
        """The call this transport carries, for what the adapter starts itself (a transfer)."""
        ...


class ToolOutcome(Protocol):
    """What the core needs from a finished tool call (`tools.ToolResult` is one)."""

    output: dict[str, Any]
    page_event: dict[str, Any] | None
    duration_ms: float

    def output_json(self) -> str: ...


class CallObserver(Protocol):
    """Told what happens on every call (call records, metrics). Must not block or raise."""

    def call_started(self, call: Call) -> None: ...

    def call_noted(self, call: Call, note: Note) -> None: ...

    def call_ended(self, call: Call) -> None: ...


RunToolFn = Callable[[str, str, "CallSpec"], Awaitable[ToolOutcome]]  # name, arguments, call


class Call(ModelLife, Watchdogs):
    """One call's model connection, tool tasks, watchdogs and end; see the module docstring."""

    def __init__(
        self,
        spec: CallSpec,
        transport: Transport,
        *,
        settings: Settings,
        run_tool: RunToolFn,
        observers: tuple[CallObserver, ...] = (),
    ):
        self.spec = spec
        self.observers = observers
        self.transport = transport
        self.settings = settings
        self.run_tool = run_tool
        self.session = RelaySession(
            max_frame_chars=settings.max_client_frame_bytes,
            session_update=spec.session_update,
            max_events_per_s=settings.max_client_events_per_s,
            silence=silence_for(spec, settings),
        )
        self.model: ModelConnection | None = None
        self.model_since = 0.0
        self.replacing = asyncio.Lock()
        self.to_caller = Outbound(self._send_to_caller)
        self.to_model = Outbound(self._send_to_model)
        self.tool_tasks: set[asyncio.Future[None]] = set()
        self.background: set[asyncio.Future[None]] = set()  # writes started by a replacement
        self.quiet = asyncio.Event()  # set whenever the session may have become quiet
        self.started = self.last_caller_event = time.monotonic()
        self.started_at = time.time()  # wall clock, for records
        self.ended_at: float | None = None
        self.end: EndCall | None = None
        self.stopping: asyncio.Future[EndCall] = asyncio.get_running_loop().create_future()
        self.context = contextvars.copy_context()

    def stop(self, end: EndCall) -> None:
        """End the call from outside (shutdown, a transport's hang-up)."""
        if not self.stopping.done():
            self.stopping.set_result(end)

    # -- the life of a call ----------------------------------------------------------------------

    @property
    def end_reason(self) -> str:
        return self.end.reason if self.end is not None else "caller left"

    def _report(self) -> None:
        """Hand the session's notes to the observers (records, metrics)."""
        for note in self.session.take_notes():
            for observer in self.observers:
                observer.call_noted(self, note)

    async def run(self) -> None:
        """Open the model, carry the call until either side ends it, then clean up everything."""
        self.context = contextvars.copy_context()  # tool tasks log under the call's session id
        log.info("%s call started from %s", self.spec.channel, self.spec.peer)
        for observer in self.observers:
            observer.call_started(self)
        try:
            await self._run()
        finally:
            self.ended_at = time.time()
            self._report()
            for observer in self.observers:
                observer.call_ended(self)

    async def _run(self) -> None:
        try:
            self.model = await self.spec.connect_model()
        except ModelUnavailable as exc:
            log.warning("model unavailable: %s", exc.message)
            self.end = EndCall(CLOSE_INTERNAL, exc.code, server_error(exc.code, exc.message))
            await self.transport.close(self.end.code, exc.code, self.end.error)
            return
        self.model_since = time.monotonic()
        self.transport.attach(self)
        tasks: list[asyncio.Future[Any]] = []
        try:
            await self.apply(self.session.start(self.started))
            if self.spec.greet:
                await self.apply([ToModel(orjson.dumps({"type": p.RESPONSE_CREATE}).decode())])
            tasks = [
                asyncio.ensure_future(self.read_caller()),
                asyncio.ensure_future(self.read_model()),
                asyncio.ensure_future(self.watchdog()),
                self.stopping,
            ]
            if not self.spec.sideband:
                tasks.append(asyncio.ensure_future(self.rotate_model()))
            if self.session.silence is not None:
                tasks.append(asyncio.ensure_future(self.silence_watch()))
            async with asyncio.timeout(self.settings.max_session_s):
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            self.end = self._outcome(done)
        except TimeoutError:
            error = server_error("session_expired", "The call reached its maximum length.")
            self.end = EndCall(CLOSE_NORMAL, "maximum call length", error)
        except EndCall as exc:
            self.end = exc
        except CallerGone:
            self.end = None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.finish()

    def _outcome(self, done: set[asyncio.Future[Any]]) -> EndCall | None:
        for task in done:
            if task is self.stopping:
                return task.result()
            exc = task.exception()
            if isinstance(exc, EndCall):
                return exc
            if exc is not None and not isinstance(exc, CallerGone):
                log.error("call failed", exc_info=exc)
                return EndCall(CLOSE_INTERNAL, "internal error")
        return None  # the caller left

    async def finish(self) -> None:
        """Let tool calls in flight finish (bounded), then close the model, then the caller."""
        if self.tool_tasks:
            _, stuck = await asyncio.wait(self.tool_tasks, timeout=self.settings.tool_timeout_s + 1)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        for task in list(self.background):
            task.cancel()
        if self.model is not None:
            await self.model.close()
        end = self.end
        if end is not None:
            await self.transport.close(end.code, end.reason, end.error)
        else:
            await self.transport.close(CLOSE_NORMAL, "caller left", None)
        log.info(
            "call ended after %.1fs (%s): %s",
            time.monotonic() - self.started,
            end.reason if end else "caller left",
            orjson.dumps(self.session.stats.as_event_fields()).decode(),
        )

    async def say_to_model(self, text: str) -> None:
        """Tell the model something as a system message and let it answer (for adapters)."""
        item = {
            "type": p.ITEM_CREATE,
            "item": {
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": text}],
            },
        }
        create = {"type": p.RESPONSE_CREATE}
        await self.apply(
            [ToModel(orjson.dumps(item).decode()), ToModel(orjson.dumps(create).decode())]
        )

    # -- the two read paths ----------------------------------------------------------------------

    async def read_caller(self) -> None:
        """The caller's events, through the session's checks, until the caller goes."""
        receive, session = self.transport.receive, self.session
        while True:
            message = await receive()
            if message is None:
                return
            self.last_caller_event = now = time.monotonic()
            if type(message) is str:
                await self.apply(session.client_text(message, now))
            else:
                await self.apply(session.client_binary())
            if session.notes:
                self._report()

    async def read_model(self) -> None:
        """The model's events; a dropped model is replaced and the call goes on."""
        session = self.session
        while True:
            model = self.model
            assert model is not None
            try:
                text = await model.recv()
            except ModelClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                if model is self.model:
                    log.warning("model connection closed (%s)", code)
                    if code in FATAL_MODEL_CLOSES:
                        error = server_error(
                            "model_disconnected",
                            "The voice model ended the call; please call again.",
                        )
                        raise EndCall(CLOSE_INTERNAL, "model disconnected", error) from None
                await self.replace_model(model, "model_disconnected")
                continue
            if model is not self.model:
                continue  # the tail of a replaced session is dropped
            await self.apply(session.model_text(text, time.monotonic()))
            if session.notes:
                self._report()
            if session.quiet:
                self.quiet.set()

    # -- the ordered write paths -----------------------------------------------------------------

    async def apply(self, actions: list[Action]) -> None:
        """Queue each action on its socket's write path in order, then write them."""
        to_caller, to_model = self.to_caller, self.to_model
        caller_touched = model_touched = False
        for action in actions:
            if type(action) is ToModel:
                to_model.push(action.text)
                model_touched = True
            elif type(action) is ToClient:
                if self.transport.passthrough:
                    to_caller.push(action.text)
                    caller_touched = True
                    continue
                for translated in self.transport.deliver(action.text):
                    if type(translated) is ToModel:
                        to_model.push(translated.text)
                        model_touched = True
                    elif type(translated) is ToClient:
                        to_caller.push(translated.text)
                        caller_touched = True
                    elif type(translated) is Close:
                        self.stop(EndCall(translated.code, translated.reason))
            elif type(action) is RunTool:
                self.start_tool(action)
            elif type(action) is Close:
                if model_touched:
                    await to_model.flush()
                if caller_touched:
                    await self._flush_caller()
                raise EndCall(action.code, action.reason)
        if model_touched:
            await to_model.flush()
        if caller_touched:
            await self._flush_caller()

    async def _flush_caller(self) -> None:
        try:
            await self.to_caller.flush()
        except CallerGone:
            raise
        except Exception:
            raise CallerGone() from None

    async def _send_to_caller(self, text: str) -> None:
        try:
            await self.transport.send(text)
        except Exception:
            raise CallerGone() from None

    async def _send_to_model(self, text: str) -> None:
        """Send to the current model; if it dropped, replace it (or wait for that) and resend."""
        while True:
            model = self.model
            assert model is not None
            try:
                await model.send(text)
                return
            except ModelClosed:
                await self.replace_model(model, "model_disconnected")

    # -- tools ------------------------------------------------------------------------------------

    def start_tool(self, call: RunTool) -> None:
        task = asyncio.create_task(self.tool_call(call), context=self.context.copy())
        self.tool_tasks.add(task)
        task.add_done_callback(self.tool_tasks.discard)

    async def tool_call(self, call: RunTool) -> None:
        """Run one tool; deliver its output and page event even if the call is ending."""
        result = await self.run_tool(call.name, call.arguments, self.spec)
        ok = result.output.get("ok") is True
        log.info(
            "tool %s %s in %.1f ms",
            call.name,
            "ok" if ok else result.output.get("error"),
            result.duration_ms,
        )
        actions = self.session.tool_finished(
            call.call_id, result.output_json(), result.page_event, result.duration_ms, ok
        )
        self._report()
        try:
            async with asyncio.timeout(self.settings.tool_timeout_s):
                await self.apply(actions)
        except (CallerGone, EndCall, TimeoutError, ModelClosed) as exc:
            log.info("tool result not delivered: %s", type(exc).__name__)
        if self.session.quiet:
            self.quiet.set()
