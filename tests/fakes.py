"""In-memory stand-ins for the call core's parts: a transport, a model connection, a tool.

Queue-backed and observable, so the core's behaviour is tested without sockets; every wait
is for a condition, bounded by the test's timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close as CloseFrame

from server.realtime.session import Action, ToClient


class _Watched:
    """Something tests wait on: `changed` wakes every waiter after each change."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def notify(self) -> None:
        asyncio.get_running_loop().create_task(self._notify())

    async def wait_until(self, predicate: Any) -> None:
        async with self._changed:
            await self._changed.wait_for(predicate)


class FakeTransport(_Watched):
    """The caller's side: `feed` what the caller says, read `sent`; `gate` holds every send."""

    channel = "test"
    passthrough = True

    def __init__(self, gate: bool = False):
        super().__init__()
        self.inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.sent: list[str] = []
        self.gate = asyncio.Event()
        if not gate:
            self.gate.set()
        self.blocked = False  # a send is waiting at the closed gate
        self.closed_with: tuple[int, str, dict[str, Any] | None] | None = None

    def feed(self, text: str | bytes) -> None:
        self.inbox.put_nowait(text)

    async def leave(self) -> None:
        self.inbox.put_nowait(None)

    def close_gate(self) -> None:
        self.gate.clear()

    def open_gate(self) -> None:
        self.gate.set()

    async def receive(self) -> str | bytes | None:
        return await self.inbox.get()

    def attach(self, call: Any) -> None:
        self.call = call

    def deliver(self, text: str) -> list[Action]:
        return [ToClient(text)]

    async def send(self, text: str) -> None:
        if not self.gate.is_set():
            self.blocked = True
            self.notify()
            await self.gate.wait()
            self.blocked = False
        self.sent.append(text)
        self.notify()

    async def close(self, code: int, reason: str, error: dict[str, Any] | None) -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason, error)
            self.notify()

    def kinds(self) -> list[str]:
        return [orjson.loads(t)["type"] for t in self.sent]

    async def wait_for(self, kind: str) -> None:
        await self.wait_until(lambda: kind in self.kinds())

    async def wait_count(self, kind: str, count: int) -> None:
        await self.wait_until(lambda: self.kinds().count(kind) >= count)

    async def wait_blocked(self) -> None:
        await self.wait_until(lambda: self.blocked)


class FakeModel(_Watched):
    """The model's side: `feed` what the model says, read `sent`; `drop` closes it abruptly."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox: asyncio.Queue[str | CloseFrame] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = False
        self.dropped: CloseFrame | None = None
        self.read = 0

    @property
    def unread(self) -> int:
        return self.inbox.qsize()

    def feed(self, text: str) -> None:
        self.inbox.put_nowait(text)

    def drop(self, code: int) -> None:
        self.dropped = CloseFrame(code, "dropped")
        self.inbox.put_nowait(self.dropped)

    async def send(self, text: str) -> None:
        if self.dropped is not None or self.closed:
            raise ConnectionClosed(self.dropped, None)
        self.sent.append(text)
        self.notify()

    async def recv(self) -> str:
        item = await self.inbox.get()
        if isinstance(item, CloseFrame):
            self.inbox.put_nowait(item)  # stays closed
            raise ConnectionClosed(item, None)
        self.read += 1
        return item

    async def close(self) -> None:
        self.closed = True
        self.notify()

    def kinds(self) -> list[str]:
        return [orjson.loads(t)["type"] for t in self.sent]

    async def wait_sent(self, kind: str) -> None:
        await self.wait_until(lambda: kind in self.kinds())


class ToolReply:
    """A tool that answers `{"ok": true}` (and `page_event`), optionally held until `release`."""

    def __init__(self, page_event: dict[str, Any] | None = None, hold: bool = False):
        self.page_event = page_event
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.finished = asyncio.Event()

    async def run(self, name: str, arguments: str, call: Any) -> Any:
        self.started.set()
        await self.release.wait()
        self.finished.set()
        return _Result({"ok": True, "tool": name}, self.page_event, 1.0)


class _Result:
    def __init__(self, output: dict[str, Any], page_event: dict[str, Any] | None, ms: float):
        self.output, self.page_event, self.duration_ms = output, page_event, ms

    def output_json(self) -> str:
        return orjson.dumps(self.output).decode()
