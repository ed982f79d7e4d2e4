"""The callers' WebSocket: uvicorn's protocol with a fast lane for plain text frames.

uvicorn (`websockets-sansio`) parses every frame with `websockets`' generator-based parser,
builds every outgoing frame through it, and stops reading the socket after each message until
the app takes it. For a relay carrying 50 audio frames a second each way that is most of its
CPU. This subclass, once the handshake is done:

* splits complete unfragmented text frames itself (`frames.TextStream`) and queues them as
  the same ASGI `websocket.receive` messages; any other frame (ping, pong, close, fragment,
  oversize, bad UTF-8), and everything after it, goes to `websockets` as before, so the library
  still answers pings and closes with the right codes. The lane reopens once `websockets` holds
  no partial frame;
* writes `websocket.send` text as one frame straight to the transport while the caller keeps
  up (uvicorn's `writable`); otherwise uvicorn's own `send` waits and writes;
* stops reading only when `QUEUE_HIGH` messages wait for the app, not after every message;
* offers the app a direct line, as the ASGI scope extension `TEXT_LANE`: `listen(handler)` has
  text messages handed to `handler` as they are read (while nothing waits in the ASGI queue, so
  order holds), `send_now(text)` writes a frame if the socket can take it, `hold_reading(on)`
  stops reading while the app's own outbox is full. The relay uses it to carry an audio frame
  from one socket to the other inside one callback, with no task switch.

Everything else -- handshake, keepalive pings, closing, errors -- is uvicorn's code unchanged.
It reaches into uvicorn's and websockets' attributes, hence the version pins in pyproject.toml;
`tests/test_frames.py` runs both lanes against real sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from server.realtime.frames import TextStream, text_frame

QUEUE_HIGH = 32  # messages waiting for the app before the socket stops being read
TEXT_LANE = "voice.text_lane"  # the scope["extensions"] key under which a connection offers it
TRANSPORT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # the socket's own cap; the relay's is stricter


def uvicorn_ws_options() -> dict[str, Any]:
    """uvicorn's WebSocket settings, for `python -m server` and the test server alike."""
    return {
        "ws": "server.realtime.client_socket:CallerWebSocketProtocol",
        "ws_max_size": TRANSPORT_MAX_FRAME_BYTES,
        "ws_per_message_deflate": False,  # browsers offer it; base64 audio is not worth the CPU
    }


class CallerWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fast_lane = False  # set once the handshake is done and websockets holds nothing
        self.texts = TextStream(masked=True, max_size=self.conn.max_message_size)
        self.text_handler: Callable[[str], None] | None = None

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:  # the scope exists; the app has not started yet
            self.scope["extensions"][TEXT_LANE] = self

    # -- the direct line ----------------------------------------------------------------------

    def listen(self, handler: Callable[[str], None] | None) -> None:
        """Hand each text message to `handler` as it is read, instead of the ASGI queue."""
        self.text_handler = handler

    def send_now(self, text: str) -> bool:
        """Write one text frame if the socket can take it now; False means use `send`."""
        if (
            self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
        ):
            return False
        self.transport.write(text_frame(text.encode()))
        return True

    def hold_reading(self, on: bool) -> None:
        """Stop (or resume) reading the socket while the app cannot keep up."""
        if on:
            self.transport.pause_reading()
        elif not self.read_paused:
            self.transport.resume_reading()

    # -- receiving ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.fast_lane:
            texts, data = self.texts.feed(data)  # type: ignore[assignment]
            for text in texts:
                self._queue_text(text)
            if data is None:
                return
        super().data_received(data)  # handshake, control frames, fragments, errors
        self.fast_lane = self._lane_open()

    def _lane_open(self) -> bool:
        conn = self.conn
        return (
            self.handshake_complete
            and not self.close_sent
            and conn.state is State.OPEN
            and conn.parser_exc is None
            and conn.current_size is None  # no fragmented message under way
            and not conn.reader.buffer
        )

    def _queue_text(self, text: str) -> None:
        if self.close_sent:  # as uvicorn: past `websocket.close`, messages are dropped
            return
        handler = self.text_handler
        if handler is not None and self.queue.empty():
            handler(text)
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        self._limit_queue()

    def send_receive_event_to_app(self) -> None:
        """uvicorn's, minus its pause after every message."""
        paused = self.read_paused
        self.read_paused = True  # the parent pauses unless already paused
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        self._limit_queue()

    def _limit_queue(self) -> None:
        if not self.read_paused and self.queue.qsize() >= QUEUE_HIGH:
            self.read_paused = True
            self.transport.pause_reading()  # uvicorn's `receive` resumes once the queue is empty

    # -- sending ------------------------------------------------------------------------------

    async def send(self, message: Any) -> None:
        """uvicorn's `send`, with text written at once while the caller keeps up."""
        if (
            message["type"] == "websocket.send"
            and (text := message.get("text")) is not None
            and self.send_now(text)  # OPEN only once the 101 response went out
        ):
            return
        await super().send(message)  # which also waits while the caller's buffers are full
