"""The tool machinery: `Tool` (a JSON Schema beside its async handler), the `ToolRegistry` that
runs one call safely, and what handlers receive and return.

The relay knows nothing of SQL: it is handed a `ToolRegistry` and calls `run(name, arguments)`.
Every outcome -- success, refusal, invalid arguments, database trouble, timeout -- comes back as
a `ToolResult`: JSON the model can speak from, and the event the page is shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from protocol import realtime as p
from server.book.reservations import DatabaseUnavailable, Origin
from server.settings import Settings

log = logging.getLogger("tools")


@dataclass(frozen=True)
class ToolContext:
    """What a handler may use: the shared pool and the settings. Nothing of the relay.

    `source` and `call_id` say who acts, for the bookings' history: the call core gives each
    call its own context with `dataclasses.replace(ctx, call_id=...)`.
    """

    pool: asyncpg.Pool
    settings: Settings
    source: str = "voice"
    call_id: str | None = None

    @property
    def origin(self) -> Origin:
        return Origin(self.source, self.call_id)


@dataclass
class ToolResult:
    output: dict[str, Any]  # sent to the model as the function_call_output (JSON)
    page_event: dict[str, Any] | None = None  # a custom event for the page, if any
    duration_ms: float = 0.0

    def output_json(self) -> str:
        return orjson.dumps(self.output).decode()


class ToolArgumentsInvalid(Exception):
    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


Handler = Callable[[dict[str, Any], ToolContext], Coroutine[Any, Any, ToolResult]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    handler: Handler

    def schema(self) -> dict[str, Any]:
        """The entry for `session.update`'s `tools` list."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


def failure(code: str, message: str, **extra: Any) -> ToolResult:
    """A refusal the model can say in words, and the page shows as `reservation.failed`."""
    output = {"ok": False, "error": code, "message": message, **extra}
    return ToolResult(output, p.custom_event(p.RESERVATION_FAILED, reason=code, message=message))


@dataclass
class ToolRegistry:
    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, tool: Tool) -> None:
        self.tools[tool.name] = tool

    def schemas(self, without: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """The `tools` list of a session; `without` leaves out tools this call cannot use."""
        return [tool.schema() for name, tool in self.tools.items() if name not in without]

    async def run(
        self, name: str, arguments: str, context: ToolContext, timeout_s: float
    ) -> ToolResult:
        """Run one call. Never raises (except cancellation): every failure is a `ToolResult`."""
        started = time.perf_counter()
        result = await self._run(name, arguments, context, timeout_s)
        result.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        return result

    async def _run(
        self, name: str, arguments: str, context: ToolContext, timeout_s: float
    ) -> ToolResult:
        tool = self.tools.get(name)
        if tool is None:
            return failure("unknown_tool", f"There is no tool called {name!r}.")
        try:
            args = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            return failure("invalid_arguments", "The tool arguments were not valid JSON.")
        if not isinstance(args, dict):
            return failure("invalid_arguments", "The tool arguments must be a JSON object.")
        # The handler runs as its own task so the deadline holds even when cancelling it is slow
        # (asyncpg waits for the server to acknowledge a cancelled query while it releases the
        # connection). A late handler still finishes within the pool's command timeout.
        task = asyncio.create_task(tool.handler(args, context), name=f"tool-{name}")
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_retrieve)
            log.warning("tool %s timed out after %.1fs", name, timeout_s)
            return failure(
                "timeout",
                "The reservation system did not answer in time, so I cannot confirm it. "
                "Trying again is safe: the same booking is never made twice.",
            )
        try:
            return task.result()
        except ToolArgumentsInvalid as exc:
            return failure(
                "invalid_arguments",
                "Some details are missing or invalid: " + _sentence(exc.fields),
                fields=exc.fields,
            )
        except DatabaseUnavailable as exc:
            log.warning("tool %s: database unavailable: %s", name, exc)
            return failure(
                "database_unavailable",
                "I could not reach the reservation system just now. "
                "Nothing was saved; please try again in a moment.",
            )
        except Exception:
            log.exception("tool %s failed", name)
            return failure("internal_error", "Something went wrong on our side. Please try again.")


def _retrieve(task: asyncio.Task[ToolResult]) -> None:
    """Collect a timed-out handler's late outcome so asyncio does not warn about it."""
    if not task.cancelled() and task.exception() is not None:
        log.info("late tool failure after timeout: %r", task.exception())


def _sentence(fields: dict[str, str]) -> str:
    return "; ".join(f"{name.replace('_', ' ')} {problem}" for name, problem in fields.items())
