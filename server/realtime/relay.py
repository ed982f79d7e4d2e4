"""The `/v1/realtime` WebSocket endpoint: sockets, tasks and timeouts. No decisions.

Per call: check who is calling, open the model connection, send the server's session.update,
then carry events both ways until either side ends. Every protocol decision comes from
`RelaySession`; this module only carries out its actions.

The audio path runs inside the sockets' read callbacks: both sockets offer a direct line
(`client_socket.TEXT_LANE`, `ModelWebSocket.listen`), so a frame read from one is decided on and
written to the other in the same callback, with no task switch. An action that cannot be carried
out at once (the other socket is full, the model is being replaced, a close) goes to the call's
outbox, which one task works through in order; while anything waits there, later actions queue
behind it, and past `OUTBOX_HIGH` both sockets stop being read until it drains. Two pumps still
read the ASGI queue and `recv()` for what arrives outside the lanes (before they open, fragmented
messages, disconnects) and one task runs each tool call.

A model connection that drops (or nears the model's session-length cap) is replaced: a new one is
opened with backoff, brought up to date by `RelaySession.replay`, and the page is told with
`session.reconnected`. Whatever ends the call, tool calls in flight finish (bounded), the model
socket is closed and every task of the session is done before the endpoint returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
import websockets.exceptions as ws_errors
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from server.admission import Admission, Refusal
from server.logs import session_id
from server.realtime import protocol as p
from server.realtime.client_socket import TEXT_LANE
from server.realtime.model_client import ModelConnection, ModelUnavailable
from server.realtime.session import (
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    Action,
    Close,
    RelaySession,
    RunTool,
    ToClient,
    ToModel,
)
from server.settings import Settings

log = logging.getLogger("server.relay")

CLOSE_NORMAL = 1000
CLOSING_SEND_S = 2.0  # the last error event and close frame, to a client that may not read
CLOSE_RESTART = 1012
RECONNECT_DELAYS_S = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)  # before each try to replace a lost model
FATAL_MODEL_CLOSES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})  # retrying cannot help
FATAL_MODEL_ERRORS = frozenset({"model_auth_failed"})
OUTBOX_HIGH = 64  # actions waiting in a call's outbox before both sockets stop being read
OUTBOX_LOW = 16  # ... and when reading starts again


class TextLane(Protocol):
    """A socket's direct line (`CallerWebSocketProtocol`, `ModelWebSocket`)."""

    def listen(self, handler: Callable[[str], None] | None) -> None: ...
    def send_now(self, text: str) -> bool: ...
    def hold_reading(self, on: bool) -> None: ...


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


def _server_error(code: str, message: str) -> dict[str, Any]:
    return p.error_event(code, message, error_type="server_error")


_session_ids = itertools.count(1)


class Relay:
    """Accepts calls; knows the live ones so that a shutdown can end them politely."""

    def __init__(
        self,
        *,
        settings: Settings,
        connect_model: ConnectFn,
        run_tool: RunToolFn,
        session_update: SessionUpdateFn,
        admission: Admission,
    ):
        self.settings = settings
        self.admission = admission
        self.connect_model = connect_model
        self.run_tool = run_tool
        self.session_update = session_update
        self.calls: set[_Call] = set()
        self.draining = False
        self._no_calls = asyncio.Event()
        self._no_calls.set()
        _relays.add(self)

    @property
    def active(self) -> int:
        return len(self.calls)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app of `/v1/realtime`.

        Starlette's `WebSocket` handles the handshake and closing; the pumps use the raw ASGI
        `receive`/`send`, which skip its per-message state checks on the audio path.
        """
        await self.endpoint(WebSocket(scope, receive, send), receive, send)

    async def endpoint(self, websocket: WebSocket, receive: Receive, send: Send) -> None:
        await websocket.accept()
        async with self.admission.admit(websocket, also=self._refusal) as refusal:
            if refusal is not None:  # logged by admission, with the client and its Origin
                await _send(websocket, orjson.dumps(refusal.error).decode())
                await _close(websocket, refusal.code, refusal.reason)
                return
            lane = websocket.scope.get("extensions", {}).get(TEXT_LANE)
            call = _Call(self, websocket, receive, send, f"s{next(_session_ids)}", lane)
            self.calls.add(call)
            self._no_calls.clear()
            token = session_id.set(call.sid)
            try:
                await call.run()
            finally:
                session_id.reset(token)
                self.calls.discard(call)
                if not self.calls:
                    self._no_calls.set()

    def _refusal(self) -> Refusal | None:
        """This endpoint's own checks; origin, token and per-client limits are admission's."""
        if self.draining:
            error = _server_error("server_restarting", "The server is restarting; call again.")
            return Refusal(CLOSE_TRY_AGAIN, error, "server restarting")
        if self.active >= self.settings.max_sessions:
            error = _server_error("server_busy", "Too many calls right now; try again soon.")
            return Refusal(CLOSE_TRY_AGAIN, error, "server at capacity")
        return None

    async def drain(self) -> None:
        """Refuse new calls; end live ones after their tool calls finish; return when all ended."""
        self.draining = True
        calls = list(self.calls)
        if calls:
            log.info("shutting down: ending %d call(s)", len(calls))
        for call in calls:
            call.stop(
                _EndCall(
                    CLOSE_RESTART,
                    "server restarting",
                    _server_error("server_restarting", "The server is restarting; call again."),
                )
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.shutdown_grace_s):
                await self.idle()

    async def idle(self) -> None:
        """Return once no call is live (every call's tasks have ended)."""
        await self._no_calls.wait()


_relays: weakref.WeakSet[Relay] = weakref.WeakSet()


async def drain_all() -> None:
    """End every call of every relay in this process (used on SIGTERM)."""
    await asyncio.gather(*(relay.drain() for relay in list(_relays)))


class _Call:
    """One caller's session: its sockets, its tasks, its protocol state."""

    def __init__(
        self,
        relay: Relay,
        websocket: WebSocket,
        receive: Receive,
        send: Send,
        sid: str,
        lane: TextLane | None,
    ):
        settings = relay.settings
        self.relay = relay
        self.settings = settings
        self.ws = websocket
        self.receive = receive
        self.send = send
        self.sid = sid
        self.model: ModelConnection | None = None
        self.model_since = 0.0
        self.model_changed = asyncio.Event()  # set whenever self.model is replaced
        self.replacing = asyncio.Lock()
        self.quiet: asyncio.Event | None = None  # set by the pumps once the session is quiet
        self.session = RelaySession(
            max_frame_chars=settings.max_client_frame_bytes,
            session_update=relay.session_update(),
            max_events_per_s=settings.max_client_events_per_s,
        )
        self.tool_tasks: set[asyncio.Task[None]] = set()
        self.started = self.last_client_event = time.monotonic()
        self.client_send_since = 0.0  # when a send to the client started; 0 when none is under way
        self.model_send_since = 0.0
        self.stopping: asyncio.Future[_EndCall] = asyncio.get_running_loop().create_future()
        self.client_lane = lane
        self.model_lane: TextLane | None = None
        self.lanes_open = False  # once the session has started; closed again as the call ends
        self.outbox: deque[Action] = deque()
        self.outbox_ready = asyncio.Event()
        self.holding = False
        self.context = contextvars.copy_context()  # replaced in run(), which has the session id

    def stop(self, end: _EndCall) -> None:
        if not self.stopping.done():
            self.stopping.set_result(end)

    async def run(self) -> None:
        self.context = contextvars.copy_context()  # lane callbacks run in it: logs name the call
        log.info("call started from %s", _peer(self.ws))
        try:
            self.set_model(await self.relay.connect_model())
        except ModelUnavailable as exc:
            log.warning("model unavailable: %s", exc.message)
            await _send(self.ws, orjson.dumps(_server_error(exc.code, exc.message)).decode())
            await _close(self.ws, CLOSE_INTERNAL, exc.code)
            return
        end: _EndCall | None = None
        tasks: list[asyncio.Future[Any]] = []
        try:
            await self.execute(self.session.start())
            self.open_lanes()
            tasks = [
                asyncio.create_task(self.client_pump(), name=f"{self.sid}-client"),
                asyncio.create_task(self.model_pump(), name=f"{self.sid}-model"),
                asyncio.create_task(self.sender(), name=f"{self.sid}-outbox"),
                asyncio.create_task(self.rotate_model(), name=f"{self.sid}-rotate"),
                asyncio.create_task(self.watchdog(), name=f"{self.sid}-watchdog"),
                self.stopping,
            ]
            async with asyncio.timeout(self.settings.max_session_s):
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            end = self._outcome(done)
        except TimeoutError:
            error = _server_error("session_expired", "The call reached its maximum length.")
            end = _EndCall(CLOSE_NORMAL, "maximum call length", error)
        except _EndCall as exc:
            end = exc
        except _ClientGone:
            end = None
        finally:
            self.close_lanes()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.finish(end)

    def _outcome(self, done: set[asyncio.Future[Any]]) -> _EndCall | None:
        for task in done:
            if task is self.stopping:
                return task.result()
            exc = task.exception()
            if isinstance(exc, _EndCall):
                return exc
            if exc is not None and not isinstance(exc, _ClientGone):
                log.error("relay failed", exc_info=exc)
                return _EndCall(CLOSE_INTERNAL, "relay error")
        return None

    async def finish(self, end: _EndCall | None) -> None:
        """Let tool calls in flight finish (bounded), then close the model, then the client."""
        if self.tool_tasks:
            _, stuck = await asyncio.wait(self.tool_tasks, timeout=self.settings.tool_timeout_s + 1)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        if self.model is not None:
            await self.model.close()
        if end is not None:
            if end.error is not None:
                await _send(self.ws, orjson.dumps(end.error).decode())
            await _close(self.ws, end.code, end.reason)
        stats = self.session.stats.as_event_fields()
        log.info(
            "call ended after %.1fs (%s): %s",
            time.monotonic() - self.started,
            end.reason if end else "client left",
            orjson.dumps(stats).decode(),
        )

    # -- the model connection -----------------------------------------------------------------

    def set_model(self, model: ModelConnection) -> None:
        if self.model_lane is not None:
            self.model_lane.listen(None)  # the old session's tail is dropped, as in model_pump
        self.model = model
        self.model_lane = getattr(model, "lane", None)
        if self.lanes_open:
            self._open_model_lane()
        self.model_since = time.monotonic()
        self.model_changed.set()
        self.model_changed = asyncio.Event()

    # -- the direct lines ---------------------------------------------------------------------

    def open_lanes(self) -> None:
        self.lanes_open = True
        if self.client_lane is not None:
            self.client_lane.listen(self.on_client_text)
        self._open_model_lane()

    def _open_model_lane(self) -> None:
        lane = self.model_lane
        if lane is not None:
            lane.listen(self.on_model_lane_text)
            if self.holding:  # a model replaced while the outbox is full starts held too
                lane.hold_reading(True)

    def close_lanes(self) -> None:
        self.lanes_open = False
        for lane in (self.client_lane, self.model_lane):
            if lane is not None:
                lane.listen(None)
        if self.holding:
            self.hold(False)

    # The lane callbacks run in the socket's context, not the call's: what they start (tool
    # tasks) and what they log is given `self.context` explicitly, so log lines name the call.

    def on_client_text(self, text: str) -> None:
        """A client text message, straight from its socket (or from the client pump)."""
        self.last_client_event = now = time.monotonic()
        try:
            actions = self.session.client_text(text, now)
        except Exception:  # a bug must end this call, not the socket's read callback
            self.failed("a client event")
            return
        self.apply(actions)

    def on_model_lane_text(self, text: str) -> None:
        """A model text message, straight from the current model's socket."""
        session = self.session
        try:
            actions = session.model_text(text, time.monotonic())
        except Exception:
            self.failed("a model event")
            return
        self.apply(actions)
        if self.quiet is not None and session.quiet:
            self.quiet.set()

    def on_model_text(self, model: ModelConnection, text: str) -> None:
        """A model text message read by the model pump."""
        if model is self.model:  # the tail of a replaced session is dropped
            self.on_model_lane_text(text)

    def failed(self, what: str) -> None:
        self.context.run(log.exception, "relay failed on %s", what)
        self.stop(_EndCall(CLOSE_INTERNAL, "relay error"))

    def apply(self, actions: list[Action]) -> None:
        """Carry out what can be done now; queue the rest, in order, for `sender`."""
        outbox = self.outbox
        for action in actions:
            if outbox or not self.run_now(action):
                outbox.append(action)
        if outbox:
            self.outbox_ready.set()
            if len(outbox) >= OUTBOX_HIGH and not self.holding:
                self.hold(True)

    def run_now(self, action: Action) -> bool:
        kind = type(action)
        if kind is ToModel:
            lane = self.model_lane
            return lane is not None and lane.send_now(action.text)  # type: ignore[union-attr]
        if kind is ToClient:
            lane = self.client_lane
            return lane is not None and lane.send_now(action.text)  # type: ignore[union-attr]
        if kind is RunTool:
            self.start_tool(action)  # type: ignore[arg-type]
            return True
        return False  # Close: `sender` raises it, after what came before it

    def hold(self, on: bool) -> None:
        """Stop or resume reading both sockets while the outbox is full."""
        self.holding = on
        for lane in (self.client_lane, self.model_lane):
            if lane is not None:
                lane.hold_reading(on)

    async def sender(self) -> None:
        """Work through the outbox in order, waiting on full sockets and model replacements."""
        outbox = self.outbox
        while True:
            await self.outbox_ready.wait()
            while outbox:
                await self.execute([outbox[0]])
                outbox.popleft()
                if self.holding and len(outbox) <= OUTBOX_LOW:
                    self.hold(False)
            self.outbox_ready.clear()

    async def replace_model(self, reason: str) -> None:
        """Open a fresh model session with backoff and replay the call into it.

        The replay goes to the new connection before it becomes `self.model`, so no client event
        can reach it ahead of the session settings and the conversation so far.
        """
        async with self.replacing:
            old = self.model
            last: ModelUnavailable | None = None
            for delay in RECONNECT_DELAYS_S[: self.settings.model_reconnect_attempts]:
                await asyncio.sleep(delay)
                try:
                    new = await self.relay.connect_model()
                except ModelUnavailable as exc:
                    last = exc
                    log.warning("reconnecting to the model (%s) failed: %s", reason, exc.message)
                    if exc.code in FATAL_MODEL_ERRORS:
                        break
                    continue
                actions = self.session.replay(reason)
                try:
                    for action in actions:
                        if type(action) is ToModel:
                            await new.send(action.text)  # type: ignore[union-attr]
                except ws_errors.ConnectionClosed:
                    continue
                self.set_model(new)
                if old is not None:
                    await old.close()
                log.info(
                    "model session replaced (%s); replayed %d items",
                    reason,
                    len(self.session.history),
                )
                await self.execute([a for a in actions if type(a) is ToClient])
                return
        message = last.message if last else "it closed during the replay."
        raise _EndCall(
            CLOSE_INTERNAL,
            "model disconnected",
            _server_error(
                "model_disconnected", f"The connection to the voice model was lost: {message}"
            ),
        )

    async def rotate_model(self) -> None:
        """Move to a fresh model session before the model's session-length cap, when quiet."""
        cap = self.settings.model_session_max_s
        while True:
            await asyncio.sleep(max(0.0, cap - (time.monotonic() - self.model_since)))
            if time.monotonic() - self.model_since < cap:
                continue  # replaced meanwhile (a drop): its clock started again
            if not self.session.quiet:  # a reply or tool call is under way: let it finish
                self.quiet = asyncio.Event()
                await self.quiet.wait()
                self.quiet = None
            await self.replace_model("model_session_limit")

    # -- pumps --------------------------------------------------------------------------------

    async def client_pump(self) -> None:
        """What the client lane did not take: disconnects, binary frames, a backlog."""
        receive = self.receive
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                self.on_client_text(text)
            else:
                self.last_client_event = time.monotonic()
                self.apply(self.session.client_binary())

    async def watchdog(self) -> None:
        """End a call whose client went quiet, or whose page or model stopped reading.

        A watchdog rather than a timeout around each receive and send: no timer per audio frame.
        A send blocks only when the peer's buffers are full, i.e. it has stopped reading.
        """
        idle = self.settings.session_idle_timeout_s
        stuck = self.settings.send_timeout_s
        tick = min(idle, stuck) / 2
        while True:
            now = time.monotonic()
            if now - self.last_client_event >= idle:
                error = _server_error(
                    "idle_timeout", "No events for too long; the call was closed."
                )
                raise _EndCall(CLOSE_NORMAL, "idle timeout", error)
            if self.client_send_since and now - self.client_send_since >= stuck:
                log.warning("the client stopped reading for %.0fs", now - self.client_send_since)
                raise _EndCall(CLOSE_POLICY, "client not reading")
            if self.model_send_since and now - self.model_send_since >= stuck:
                log.warning("the model stopped reading for %.0fs", now - self.model_send_since)
                error = _server_error("model_disconnected", "The voice model stopped responding.")
                raise _EndCall(CLOSE_INTERNAL, "model not reading", error)
            await asyncio.sleep(tick)

    async def model_pump(self) -> None:
        """What the model lane did not take; and a dropped model, which it replaces."""
        while True:
            model = self.model
            assert model is not None
            try:
                text = await model.recv()
            except ws_errors.ConnectionClosed as exc:
                if model is not self.model:
                    continue  # replaced on purpose: read from the new one
                code = exc.rcvd.code if exc.rcvd else 1006
                log.warning("model connection closed (%s)", code)
                if code in FATAL_MODEL_CLOSES:
                    error = _server_error(
                        "model_disconnected", "The voice model ended the call; please call again."
                    )
                    raise _EndCall(CLOSE_INTERNAL, "model disconnected", error) from None
                await self.replace_model("model_disconnected")
                continue
            self.on_model_text(model, text)

    # -- actions ------------------------------------------------------------------------------

    async def execute(self, actions: list[Action]) -> None:
        for action in actions:
            kind = type(action)
            if kind is ToClient:
                self.client_send_since = time.monotonic()
                try:
                    await self.send({"type": "websocket.send", "text": action.text})  # type: ignore[union-attr]
                except Exception:
                    raise _ClientGone() from None
                finally:
                    self.client_send_since = 0.0
            elif kind is ToModel:
                await self.to_model(action.text)  # type: ignore[union-attr]
            elif kind is RunTool:
                self.start_tool(action)  # type: ignore[arg-type]
            elif kind is Close:
                raise _EndCall(action.code, action.reason)  # type: ignore[union-attr]

    async def to_model(self, text: str) -> None:
        """Send to the current model; if it just dropped, wait for its replacement and resend."""
        while True:
            assert self.model is not None
            model, changed = self.model, self.model_changed
            self.model_send_since = time.monotonic()
            try:
                await model.send(text)
                return
            except ws_errors.ConnectionClosed:
                await changed.wait()  # the model pump replaces it, or the call ends
            finally:
                self.model_send_since = 0.0

    def start_tool(self, call: RunTool) -> None:
        task = asyncio.create_task(self.tool_call(call), context=self.context.copy())
        self.tool_tasks.add(task)
        task.add_done_callback(self.tool_tasks.discard)

    async def tool_call(self, call: RunTool) -> None:
        """Run one tool; deliver each of its messages even if another side has gone."""
        result = await self.relay.run_tool(call.name, call.arguments)
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
        for action in actions:
            try:
                async with asyncio.timeout(self.settings.tool_timeout_s):
                    await self.execute([action])
            except (_ClientGone, _EndCall, TimeoutError) as exc:
                log.info("tool result not delivered: %s", type(exc).__name__)
        if self.quiet is not None and self.session.quiet:
            self.quiet.set()


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "?"


async def _send(websocket: WebSocket, text: str) -> None:
    """Best effort, bounded: a client that no longer reads must not hold the call open."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSING_SEND_S):
            await websocket.send_text(text)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSING_SEND_S):
            await websocket.close(code, reason)
