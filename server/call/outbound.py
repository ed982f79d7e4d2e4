"""One ordered write path to one socket.

Every message for a socket (audio, tool outputs, page events, replays, errors) is appended here
at the moment it is decided, so it goes out in that order whichever task decided it. There is no
writer task: the first producer that finds the socket idle writes, and keeps writing until
nothing waits (the common case, one audio frame, costs no task switch). Producers that find a
write under way leave their message and return at once, unless `HIGH` messages already wait:
then they wait until the backlog is down to `LOW`. Backpressure is therefore the awaited send:
a caller that stops reading slows its own call (its reader stops reading the model), memory
stays bounded, and `busy_since` lets the call's watchdog end a call whose peer has stopped for
good.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

HIGH = 64  # messages waiting before producers wait too
LOW = 16  # ... until the backlog is down to this

SendFn = Callable[[str], Awaitable[None]]


class Outbound:
    """A FIFO in front of one socket's `send`; see the module docstring."""

    def __init__(self, send: SendFn, *, high: int = HIGH, low: int = LOW):
        self._send = send
        self._high, self._low = high, low
        self._pending: deque[str] = deque()
        self._writing = False
        self._drained = asyncio.Event()  # set while the backlog is at or below LOW
        self._drained.set()
        self.failed: BaseException | None = None  # the send that broke this path
        self.busy_since = 0.0  # monotonic start of the write under way; 0.0 when idle

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, text: str) -> None:
        """Queue a message without waiting; `flush()` sends it (keep the two together)."""
        self._pending.append(text)
        if len(self._pending) > self._low:
            self._drained.clear()

    async def flush(self) -> None:
        """Write everything queued, or, if another task is writing, wait only when over HIGH."""
        if self.failed is not None:
            raise self.failed
        if self._writing:
            if len(self._pending) >= self._high:
                await self._drained.wait()
                if self.failed is not None:
                    raise self.failed
            return
        self._writing = True
        pending = self._pending
        try:
            while pending:
                self.busy_since = time.monotonic()
                await self._send(pending[0])
                pending.popleft()
                if len(pending) <= self._low:
                    self._drained.set()
        except BaseException as exc:
            self.failed = exc
            pending.clear()
            raise
        finally:
            self.busy_since = 0.0
            self._writing = False
            self._drained.set()

    async def send(self, text: str) -> None:
        self.push(text)
        await self.flush()
