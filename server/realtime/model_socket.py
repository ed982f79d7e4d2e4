"""The model's WebSocket: websockets' client connection with a fast lane for plain text frames.

The `openai` SDK opens the model connection with `websockets.asyncio.client.connect`, which
takes a `create_connection` class; `model_client` passes this one. It is websockets' own
`ClientConnection` (handshake, keepalive pings, closing, errors all unchanged) except that,
once the connection is open (`TextLane`, which the offline model and the load generator also
put on their websockets connections):

* complete unfragmented text frames from the peer are split by `frames.TextStream` and
  handed to websockets' message queue as the frames its parser would have produced, so
  `recv()` and its flow control work as before; any other frame, and what follows it, goes to
  websockets' parser, and the lane reopens once that parser holds no partial frame;
* `send(str)` writes one text frame straight to the transport (masked with keys from
  `MaskKeys` on the client side) while the peer keeps up; otherwise websockets' own `send`
  writes and waits for it.

Like the caller's socket it offers a direct line: `listen(handler)` hands text messages to
`handler` as they are read (while websockets' queue is empty, so order holds), `send_now(text)`
writes if the socket can take it, `hold_reading(on)` stops reading while the relay catches up.

It reaches into websockets' attributes, hence the version pin in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from server.realtime.frames import MaskKeys, TextStream, text_frame


class TextLane(Connection):
    """The fast lane and direct line, on either side of a websockets asyncio connection."""

    peer_masks = False  # a server's frames are unmasked; a client's are masked (RFC 6455 §5.1)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fast_lane = False  # set once the connection is open and websockets holds nothing
        self.texts = TextStream(masked=self.peer_masks, max_size=self.protocol.max_message_size)
        self.mask_keys = None if self.peer_masks else MaskKeys()  # we mask only as a client
        self.text_handler: Callable[[str], None] | None = None

    def data_received(self, data: bytes) -> None:
        if self.fast_lane:
            texts, data = self.texts.feed(data)  # type: ignore[assignment]
            queued = self.recv_messages.frames
            for text in texts:
                handler = self.text_handler
                if handler is not None and not queued:
                    handler(text)
                else:  # what websockets' parser would have queued for recv()
                    self.recv_messages.put(Frame(Opcode.TEXT, text.encode()))
            if data is None:
                return
        super().data_received(data)  # handshake, control frames, fragments, errors
        self.fast_lane = self._lane_open()

    def _lane_open(self) -> bool:
        protocol = self.protocol
        return (
            protocol.state is State.OPEN
            and protocol.parser_exc is None
            and protocol.current_size is None  # no fragmented message under way
            and not protocol.reader.buffer
        )

    def listen(self, handler: Callable[[str], None] | None) -> None:
        """Hand each plain text message to `handler` as it is read, instead of `recv()`."""
        self.text_handler = handler

    def send_now(self, text: str) -> bool:
        """Write one text frame if the socket can take it now; False means use `send`."""
        if (
            self.paused
            or self.protocol.state is not State.OPEN
            or self.send_in_progress is not None  # a fragmented message is being sent
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(self._frame(text))
        return True

    def hold_reading(self, on: bool) -> None:
        """Stop (or resume) reading while the relay cannot keep up."""
        if on:
            self.transport.pause_reading()
        elif not self.recv_messages.paused:  # websockets' own flow control has the last word
            self.transport.resume_reading()

    async def send(self, message: Any, *, text: bool | None = None) -> None:
        """websockets' `send`, with plain text written at once when the socket can take it."""
        if type(message) is str and text is not False and self.send_now(message):
            return
        await super().send(message, text=text)  # which also waits while the peer is full

    def _frame(self, text: str) -> bytes:
        keys = self.mask_keys
        return text_frame(text.encode(), keys.take() if keys is not None else None)


class ModelWebSocket(TextLane, ClientConnection):
    """The relay's connection to the model (`create_connection` for the SDK's `connect`)."""


class FastServerConnection(TextLane, ServerConnection):
    """A websockets server connection with the same lane (the offline model's)."""

    peer_masks = True
