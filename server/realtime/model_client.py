"""Opening the model connection, through the `openai` SDK's realtime client.

The SDK builds the URL (`{base_url}/realtime?model=…`, http→ws), sends `Authorization: Bearer
<key>` and owns the handshake, on a connection of our class (`model_socket.ModelWebSocket`, a
websockets connection with a fast lane for text frames); audio frames are never parsed into SDK
models on the hot path. `ModelConnection` is the small surface the relay needs,
which tests can also satisfy with any object of the same shape.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from openai import AsyncOpenAI

from server.realtime.model_socket import ModelWebSocket

MODEL_MAX_FRAME_BYTES = 16 * 1024 * 1024
CLOSE_TIMEOUT_S = 2.0


class ModelConnection(Protocol):
    async def send(self, text: str) -> None: ...
    async def recv(self) -> str: ...
    async def close(self) -> None: ...


class ModelUnavailable(Exception):
    """The model connection could not be opened; `code` says why in one word for the client."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class _SdkConnection:
    """The SDK's connection, read and written on its underlying WebSocket.

    The SDK opened the socket (URL, headers, options) and we keep its object for closing. Frames
    go straight through the `websockets` connection beneath it: the SDK's `send_raw` adds a send
    queue and task bookkeeping, and `recv_bytes` a decode step, on every audio frame -- about 5%
    of the relay's CPU. Should a future SDK hide that socket, the public methods are used.
    `lane` is that socket's direct line (`ModelWebSocket.listen` / `send_now` / `hold_reading`),
    or None when the SDK did not use our connection class.
    """

    def __init__(self, connection: Any):
        self._conn = connection
        socket = getattr(connection, "_connection", None)
        self.lane = socket if isinstance(socket, ModelWebSocket) else None
        if callable(getattr(socket, "send", None)) and callable(getattr(socket, "recv", None)):
            self.send = socket.send  # type: ignore[method-assign]  # str in, text frame out
            self.recv = socket.recv  # type: ignore[method-assign]  # text frame in, str out

    async def send(self, text: str) -> None:
        await self._conn.send_raw(text)

    async def recv(self) -> str:
        data: bytes = await self._conn.recv_bytes()
        return data.decode()

    async def close(self) -> None:
        """Close politely, but never wait on a peer that has stopped reading: then abort."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._conn.close()
        except TimeoutError:
            transport = getattr(getattr(self._conn, "_connection", None), "transport", None)
            if transport is not None:
                transport.abort()
        except Exception:  # already closed or broken: nothing left to release
            pass


class ModelClient:
    """One SDK client per process; `connect()` opens one model session per call."""

    def __init__(self, *, api_key: str, base_url: str | None, model: str, timeout_s: float):
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0)

    async def connect(self) -> ModelConnection:
        import websockets.exceptions as ws_errors

        manager = self._client.realtime.connect(
            model=self.model,
            websocket_connection_options={
                "max_size": MODEL_MAX_FRAME_BYTES,
                "compression": None,  # base64 audio does not compress; deflate only costs CPU
                "create_connection": ModelWebSocket,  # websockets' connection + a text fast lane
                "open_timeout": self.timeout_s,
                "close_timeout": CLOSE_TIMEOUT_S,
                "ping_interval": 20,
                "ping_timeout": 20,
            },
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                connection = await manager.enter()
        except TimeoutError:
            raise ModelUnavailable(
                "model_timeout", f"The model did not answer within {self.timeout_s:g}s."
            ) from None
        except ws_errors.InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise ModelUnavailable(
                    "model_auth_failed", "The model refused the server's credentials."
                ) from None
            raise ModelUnavailable(
                "model_unavailable", f"The model refused the connection (HTTP {status})."
            ) from None
        except (OSError, ws_errors.WebSocketException) as exc:
            raise ModelUnavailable(
                "model_unavailable", f"Could not reach the model: {type(exc).__name__}."
            ) from None
        return _SdkConnection(connection)

    async def close(self) -> None:
        await self._client.close()
