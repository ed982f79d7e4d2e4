"""The `/v1/realtime` WebSocket endpoint: sockets, tasks and timeouts. No decisions.

Per call: accept, open the model connection, send the server's session.update, then run two
pumps (client → model, model → client) and one task per tool call until either side ends. Every
decision comes from `RelaySession`; this module only carries out its actions. Whatever ends the
call, the model socket is closed and every task of the session is finished before we return.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
import websockets.exceptions as ws_errors
from starlette.websockets import WebSocket

from server.realtime import protocol as p
from server.realtime.model_client import ModelConnection, ModelUnavailable
from server.realtime.session import (
    CLOSE_INTERNAL,
    CLOSE_TRY_AGAIN,
    Action,
    Close,
    RelaySession,
    RunTool,
    ToClient,
    ToModel,
)

log = logging.getLogger("server.relay")

TRANSPORT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # the socket's own cap; ours is stricter and polite
CLOSE_NORMAL = 1000


class ToolOutcome(Protocol):
    """What the relay needs from a finished tool call (`tools.ToolResult` is one)."""

    output: dict[str, Any]
    page_event: dict[str, Any] | None
    duration_ms: float

    def output_json(self) -> str: ...


RunToolFn = Callable[[str, str], Awaitable[ToolOutcome]]  # (name, arguments JSON)
ConnectFn = Callable[[], Awaitable[ModelConnection]]
SessionUpdateFn = Callable[[], dict[str, Any]]


class _EndCall(Exception):
    """Ends the call: close the client with `code`, after sending `error` if given."""

    def __init__(self, code: int, reason: str, error: dict[str, Any] | None = None):
        super().__init__(reason)
        self.code, self.reason, self.error = code, reason, error


class _ClientGone(Exception):
    """The client socket is closed: nothing more can be sent to it."""


def _model_lost() -> _EndCall:
    error = p.error_event(
        "model_disconnected",
        "The connection to the voice model was lost; please call again.",
        error_type="server_error",
    )
    return _EndCall(CLOSE_INTERNAL, "model disconnected", error)


_session_ids = itertools.count(1)


class Relay:
    def __init__(
        self,
        *,
        connect_model: ConnectFn,
        run_tool: RunToolFn,
        session_update: SessionUpdateFn,
        max_sessions: int,
        max_frame_bytes: int,
        idle_timeout_s: float,
        tool_timeout_s: float,
    ):
        self.connect_model = connect_model
        self.run_tool = run_tool
        self.session_update = session_update
        self.max_sessions = max_sessions
        self.max_frame_bytes = max_frame_bytes
        self.idle_timeout_s = idle_timeout_s
        self.tool_timeout_s = tool_timeout_s
        self.active = 0

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if self.active >= self.max_sessions:
            log.warning("refused a call: %d sessions already active", self.active)
            await _send_error(websocket, "server_busy", "Too many calls right now; try again soon.")
            await websocket.close(CLOSE_TRY_AGAIN, "server at capacity")
            return
        self.active += 1
        sid = f"s{next(_session_ids)}"
        try:
            await _Call(self, websocket, sid).run()
        finally:
            self.active -= 1


class _Call:
    """One caller's session: its sockets, its tasks, its protocol state."""

    def __init__(self, relay: Relay, websocket: WebSocket, sid: str):
        self.relay = relay
        self.ws = websocket
        self.sid = sid
        self.model: ModelConnection | None = None
        self.session = RelaySession(
            max_frame_chars=relay.max_frame_bytes, session_update=relay.session_update()
        )
        self.tool_tasks: set[asyncio.Task[None]] = set()
        self.started = time.monotonic()

    async def run(self) -> None:
        log.info("session %s: started", self.sid)
        try:
            self.model = await self.relay.connect_model()
        except ModelUnavailable as exc:
            log.warning("session %s: model unavailable: %s", self.sid, exc.message)
            await _send_error(self.ws, exc.code, exc.message, error_type="server_error")
            await _close(self.ws, CLOSE_INTERNAL, exc.code)
            return
        end: _EndCall | None = None
        try:
            await self.execute(self.session.start())
            pumps = [
                asyncio.create_task(self.client_pump(), name=f"{self.sid}-client"),
                asyncio.create_task(self.model_pump(), name=f"{self.sid}-model"),
            ]
            done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                exc = task.exception()
                if isinstance(exc, _EndCall):
                    end = exc
                elif isinstance(exc, _ClientGone):
                    end = None
                elif exc is not None:
                    log.error("session %s: relay failed", self.sid, exc_info=exc)
                    end = _EndCall(CLOSE_INTERNAL, "relay error")
        except _EndCall as exc:
            end = exc
        finally:
            await self.finish(end)

    async def finish(self, end: _EndCall | None) -> None:
        """Close the model, let in-flight tool calls settle (bounded), close the client."""
        if self.model is not None:
            await self.model.close()
        if self.tool_tasks:
            _, stuck = await asyncio.wait(self.tool_tasks, timeout=self.relay.tool_timeout_s + 1)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if end is not None:
            if end.error is not None:
                await _send_raw(self.ws, orjson.dumps(end.error).decode())
            await _close(self.ws, end.code, end.reason)
        stats = self.session.stats.as_event_fields()
        log.info(
            "session %s: ended after %.1fs (%s): %s",
            self.sid,
            time.monotonic() - self.started,
            end.reason if end else "client left",
            orjson.dumps(stats).decode(),
        )

    # -- pumps --------------------------------------------------------------------------------

    async def client_pump(self) -> None:
        receive = self.ws.receive
        session = self.session
        while True:
            try:
                async with asyncio.timeout(self.relay.idle_timeout_s):
                    message = await receive()
            except TimeoutError:
                error = p.error_event(
                    "idle_timeout",
                    "No events for too long; the call was closed.",
                    error_type="server_error",
                )
                raise _EndCall(CLOSE_NORMAL, "idle timeout", error) from None
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                await self.execute(session.client_text(text))
            else:
                await self.execute(session.client_binary())

    async def model_pump(self) -> None:
        assert self.model is not None
        recv = self.model.recv
        session = self.session
        clock = time.monotonic
        while True:
            try:
                text = await recv()
            except ws_errors.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
                log.warning("session %s: model connection closed (%s)", self.sid, code)
                raise _model_lost() from None
            await self.execute(session.model_text(text, clock()))

    # -- actions ------------------------------------------------------------------------------

    async def execute(self, actions: list[Action]) -> None:
        for action in actions:
            kind = type(action)
            if kind is ToClient:
                try:
                    await self.ws.send_text(action.text)  # type: ignore[union-attr]
                except Exception:
                    raise _ClientGone() from None
            elif kind is ToModel:
                assert self.model is not None
                try:
                    await self.model.send(action.text)  # type: ignore[union-attr]
                except ws_errors.ConnectionClosed:
                    raise _model_lost() from None
            elif kind is RunTool:
                task = asyncio.create_task(self.tool_call(action))  # type: ignore[arg-type]
                self.tool_tasks.add(task)
                task.add_done_callback(self.tool_tasks.discard)
            elif kind is Close:
                raise _EndCall(action.code, action.reason)  # type: ignore[union-attr]

    async def tool_call(self, call: RunTool) -> None:
        """Run one tool; its output goes to the model even if the audio pumps are busy."""
        result = await self.relay.run_tool(call.name, call.arguments)
        ok = result.output.get("ok") is True
        log.info(
            "session %s: tool %s %s in %.1f ms",
            self.sid,
            call.name,
            "ok" if ok else result.output.get("error"),
            result.duration_ms,
        )
        actions = self.session.tool_finished(
            call.call_id, result.output_json(), result.page_event, result.duration_ms, ok
        )
        try:
            await self.execute(actions)
        except (_ClientGone, _EndCall) as exc:  # a socket closed under us: the call is ending
            log.info("session %s: tool result not delivered: %s", self.sid, type(exc).__name__)


async def _send_error(
    websocket: WebSocket, code: str, message: str, error_type: str = "invalid_request_error"
) -> None:
    event = p.error_event(code, message, error_type=error_type)
    await _send_raw(websocket, orjson.dumps(event).decode())


async def _send_raw(websocket: WebSocket, text: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(text)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code, reason)
