"""The switchboard: every live call of this process, whatever its transport.

Adapters ask it for a line (`admit`), run their call on it, and it knows enough to refuse a call
at capacity (`MAX_SESSIONS` counts calls of every channel), to end every call politely on
SIGTERM (`drain`), and to tell tests when all calls are over (`idle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

from server.call.core import (
    CLOSE_RESTART,
    Call,
    CallObserver,
    CallSpec,
    EndCall,
    RunToolFn,
    Transport,
    server_error,
)
from server.call.model import ModelConnection
from server.logs import session_id
from server.realtime.session import CLOSE_TRY_AGAIN
from server.settings import Settings

log = logging.getLogger("server.call")

_call_numbers = itertools.count(1)


class Refused(Exception):
    """No line for this call: `code` for the close, `error` for the caller, `reason` for logs."""

    def __init__(self, code: int, error: dict[str, Any], reason: str):
        super().__init__(reason)
        self.code, self.error, self.reason = code, error, reason


class Switchboard:
    """Live calls of this process; see the module docstring."""

    def __init__(self, settings: Settings, run_tool: RunToolFn | None = None):
        self.settings = settings
        self.run_tool: RunToolFn = run_tool or _not_started
        self.model: Any = None  # the process's `ModelClient`, set at start-up
        self.observers: list[CallObserver] = []  # call records, metrics
        self.budget: Any = None  # the process's `Budget`, set at start-up when there is a cap
        self.calls: set[Call] = set()
        self.reserved = 0  # lines promised to calls still opening
        self.draining = False
        self._no_calls = asyncio.Event()
        self._no_calls.set()
        _switchboards.add(self)

    @property
    def active(self) -> int:
        return len(self.calls)

    def new_sid(self) -> str:
        return f"s{next(_call_numbers)}"

    async def connect_model(self) -> ModelConnection:
        return await self.model.connect()

    def check_capacity(self) -> None:
        """Raise `Refused` when shutting down, at `MAX_SESSIONS`, or when the budget is spent.

        Every transport asks before it opens a model session: the cap covers every channel.
        """
        if self.draining:
            error = server_error("server_restarting", "The server is restarting; call again.")
            raise Refused(CLOSE_TRY_AGAIN, error, "server restarting")
        if self.budget is not None and self.budget.exhausted:
            raise Refused(CLOSE_TRY_AGAIN, self.budget.refusal_error(), "daily budget reached")
        if self.active + self.reserved >= self.settings.max_sessions:
            error = server_error("server_busy", "Too many calls right now; try again soon.")
            raise Refused(CLOSE_TRY_AGAIN, error, "server at capacity")

    @contextlib.asynccontextmanager
    async def line(self) -> AsyncIterator[None]:
        """Hold a line while a call is being set up (raises `Refused` when there is none)."""
        self.check_capacity()
        self.reserved += 1
        try:
            yield
        finally:
            self.reserved -= 1

    async def run(self, spec: CallSpec, transport: Transport) -> Call:
        """Run one call to its end; every task of it is done when this returns."""
        call = Call(
            spec,
            transport,
            settings=self.settings,
            run_tool=self.run_tool,
            observers=tuple(self.observers),
        )
        self.calls.add(call)
        self._no_calls.clear()
        token = session_id.set(spec.sid)
        try:
            await call.run()
        finally:
            session_id.reset(token)
            self.calls.discard(call)
            if not self.calls:
                self._no_calls.set()
        return call

    async def drain(self) -> None:
        """Refuse new calls; end live ones after their tool calls finish; return when all ended."""
        self.draining = True
        calls = list(self.calls)
        if calls:
            log.info("shutting down: ending %d call(s)", len(calls))
        error = server_error("server_restarting", "The server is restarting; call again.")
        for call in calls:
            call.stop(EndCall(CLOSE_RESTART, "server restarting", error))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.shutdown_grace_s):
                await self.idle()

    async def idle(self) -> None:
        """Return once no call is live (every call's tasks have ended)."""
        await self._no_calls.wait()


_switchboards: weakref.WeakSet[Switchboard] = weakref.WeakSet()


async def drain_all() -> None:
    """End every call of every switchboard in this process (used on SIGTERM)."""
    await asyncio.gather(*(board.drain() for board in list(_switchboards)))


async def _not_started(*args: object) -> Any:
    raise RuntimeError("the app's lifespan has not run")
