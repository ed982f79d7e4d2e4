"""One socket's ordered outbox: producers append without waiting, one writer drains.

Shared by the Realtime socket (`server`) and the SIP sideband (`sip`), so it stands alone.
"""

from __future__ import annotations

import asyncio
from collections import deque

from websockets.asyncio.server import ServerConnection

Frame = bytes | str


class Outbox:
    """Frames for one socket, in order; producers append without waiting, one writer drains.

    Producers never await to enqueue (so a cancellation can never drop an event that the state
    machine already counted as sent); they await ``room()`` afterwards for backpressure.
    """

    def __init__(self, high_water: int = 64) -> None:
        self._frames: deque[Frame] = deque()
        self._high, self._low = high_water, high_water // 4
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    def put(self, frame: Frame) -> None:
        if self._closed:
            return
        self._frames.append(frame)
        self._ready.set()
        if len(self._frames) > self._high:
            self._room.clear()

    async def room(self) -> None:
        """Wait while the client is far behind; returns at once once the writer has stopped."""
        await self._room.wait()

    async def drain_to(self, ws: ServerConnection, send_timeout: float) -> None:
        """Writer loop: send frames until the connection fails or the task is cancelled."""
        try:
            while True:
                while not self._frames:
                    self._ready.clear()
                    await self._ready.wait()
                frame = self._frames.popleft()
                if len(self._frames) <= self._low:
                    self._room.set()
                async with asyncio.timeout(send_timeout):
                    await ws.send(frame, text=True)
        finally:
            self._closed = True
            self._frames.clear()
            self._room.set()
