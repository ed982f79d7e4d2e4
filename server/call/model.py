"""The model connection, opened with websockets' own documented asyncio client.

A call's model socket carries ~50 audio frames a second each way, so it is the hottest object
the relay owns. It is opened with `websockets.asyncio.client.connect` (no compression: base64
audio does not compress), frames are read with `recv(decode=False)` and written with `send(text)`:
the `openai` SDK's realtime wrapper added a layer per frame (its send path took ~20 % of the
server's CPU under load), and nothing of it is needed to carry text. The SDK stays the process's
client for what it is for: the SIP calls API (accept, refer, hang up), webhooks, and the settings
it documents (`base_url`, `websocket_base_url`), from which the socket's URL is made as the SDK
makes it: `{websocket base}/realtime?model=…`, or `?call_id=…` for a SIP call's sideband, with
`Authorization: Bearer <key>`. `ModelConnection` is the small surface the call core needs; tests
may satisfy it with any object of the same shape.
"""

from __future__ import annotations

import asyncio
from typing import Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets.exceptions as ws_errors
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

MODEL_MAX_FRAME_BYTES = 16 * 1024 * 1024
CLOSE_TIMEOUT_S = 2.0


class ModelConnection(Protocol):
    async def send(self, text: str) -> None: ...
    async def recv(self) -> str: ...
    async def close(self) -> None: ...


ModelClosed = ws_errors.ConnectionClosed  # what send/recv raise once the model socket is gone


class ModelUnavailable(Exception):
    """The model connection could not be opened; `code` says why in one word for the client."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = status  # the HTTP status of a refused handshake (404: a SIP call is gone)


class SocketModelConnection:
    """A websockets client connection seen as text in, text out."""

    def __init__(self, connection: ClientConnection):
        self._conn = connection

    async def send(self, text: str) -> None:
        await self._conn.send(text)  # one text frame

    async def recv(self) -> str:
        data = await self._conn.recv(decode=False)  # UTF-8 bytes, decoded once, here
        return data.decode() if type(data) is bytes else str(data)

    async def close(self) -> None:
        """Close politely, but never wait long on a peer that has stopped reading.

        While the closing handshake runs, what the model still sends is read and dropped: a
        model blocked writing to us could otherwise never read our close frame. A close that
        takes longer than `CLOSE_TIMEOUT_S` goes on in the background (held in `_closing`);
        websockets' own keepalive ends a peer that reads nothing at all.
        """
        closing = asyncio.ensure_future(self._conn.close())
        draining = asyncio.ensure_future(self._discard())
        for task in (closing, draining):
            _closing.add(task)
            task.add_done_callback(_closed)
        closing.add_done_callback(lambda _: draining.cancel())
        await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_S)

    async def _discard(self) -> None:
        while True:
            await self._conn.recv(decode=False)


_closing: set[asyncio.Future[None]] = set()  # closes that outlived their call


def _closed(task: asyncio.Future[None]) -> None:
    _closing.discard(task)
    if not task.cancelled():
        task.exception()  # already closed or broken: nothing left to release


class ModelClient:
    """One SDK client per process; `connect()` opens one model session per call."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str,
        timeout_s: float,
        websocket_base_url: str | None = None,
    ):
        self.model = model
        self.api_key = api_key
        self.base_url = base_url
        self.timeout_s = timeout_s
        # websocket_base_url: the SDK's own option, for a local model whose HTTP control plane
        # (SIP accept/hangup) and sockets listen apart; unset, sockets go to base_url.
        self.sdk = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            websocket_base_url=websocket_base_url,
            max_retries=0,
        )

    def url(self, call_id: str | None = None) -> str:
        """The session's socket URL, made from the SDK's own settings as the SDK makes it."""
        base = str(self.sdk.websocket_base_url or self.sdk.base_url)
        parts = urlsplit(base)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        query = urlencode({"call_id": call_id} if call_id else {"model": self.model})
        if parts.query:
            query = f"{parts.query}&{query}"
        path = parts.path.rstrip("/") + "/realtime"
        return urlunsplit((scheme, parts.netloc, path, query, ""))

    async def connect(self, call_id: str | None = None) -> ModelConnection:
        """A new model session, or with `call_id` the sideband of a SIP call already accepted."""
        # websockets' defaults keep pings (20 s) and close handling (it aborts a peer that does
        # not answer the close within 10 s).
        try:
            async with asyncio.timeout(self.timeout_s):
                connection = await ws_connect(
                    self.url(call_id),
                    additional_headers={"Authorization": f"Bearer {self.api_key}"},
                    compression=None,  # base64 audio does not compress; deflate only costs CPU
                    max_size=MODEL_MAX_FRAME_BYTES,
                    open_timeout=None,  # bounded by the timeout around it
                    user_agent_header=None,  # as the SDK sends it
                )
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
                "model_unavailable",
                f"The model refused the connection (HTTP {status}).",
                status=status,
            ) from None
        except (OSError, ws_errors.WebSocketException) as exc:
            raise ModelUnavailable(
                "model_unavailable", f"Could not reach the model: {type(exc).__name__}."
            ) from None
        return SocketModelConnection(connection)

    async def close(self) -> None:
        await self.sdk.close()
