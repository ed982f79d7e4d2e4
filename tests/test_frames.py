"""The text-frame fast lane: the pure codec against websockets' own, then both sockets for real.

`frames.split_texts` must agree with websockets' parser on every plain text frame, however the
stream is cut, and stop at everything else; `text_frame` must be read back by websockets. Then
the caller-side uvicorn protocol and the model-side connection run over loopback with pings,
fragmented messages, bad UTF-8 and a reader that stops, to show that the lane hands the rest to
websockets, keeps order, and still stops reading when the app falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from server.realtime.client_socket import QUEUE_HIGH
from server.realtime.frames import MaskKeys, TextStream, split_texts, text_frame
from server.realtime.model_socket import FastServerConnection, ModelWebSocket
from tests.conftest import serve_asgi

MAX = 16 * 1024 * 1024


def websockets_frame(payload: bytes, *, masked: bool, opcode: Opcode = Opcode.TEXT, **kw: Any):
    return Frame(opcode, payload, **kw).serialize(mask=masked)


def split_in_chunks(stream: bytes, cuts: list[int], masked: bool) -> tuple[list[str], bytes]:
    """Feed `stream` to a `TextStream` cut at `cuts`, as reads from a socket would be."""
    texts = TextStream(masked=masked, max_size=MAX)
    messages: list[str] = []
    bounds = [0, *sorted(c % (len(stream) + 1) for c in cuts), len(stream)]
    for start, end in itertools.pairwise(bounds):
        got, rest = texts.feed(stream[start:end])
        assert rest is None
        messages += got
    return messages, texts.partial


# -- the codec --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    texts=st.lists(st.text(max_size=300) | st.text(min_size=126, max_size=70_000), max_size=8),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    masked=st.booleans(),
)
def test_split_texts_reads_what_websockets_writes_however_the_stream_is_cut(
    texts: list[str], cuts: list[int], masked: bool
) -> None:
    stream = b"".join(websockets_frame(t.encode(), masked=masked) for t in texts)
    messages, rest = split_in_chunks(stream, cuts, masked)
    assert messages == texts
    assert rest == b""


def test_split_texts_handles_a_64_bit_length() -> None:
    text = "x" * 70_000 + "é"
    frame = websockets_frame(text.encode(), masked=True)
    assert frame[1] & 0x7F == 127
    assert split_texts(frame, masked=True, max_size=MAX) == ([text], len(frame), False)


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param(websockets_frame(b"hi", masked=True, opcode=Opcode.PING), id="ping"),
        pytest.param(websockets_frame(b"", masked=True, opcode=Opcode.PONG), id="pong"),
        pytest.param(websockets_frame(b"\x03\xe8", masked=True, opcode=Opcode.CLOSE), id="close"),
        pytest.param(websockets_frame(b"bin", masked=True, opcode=Opcode.BINARY), id="binary"),
        pytest.param(websockets_frame(b"frag", masked=True, fin=False), id="first-fragment"),
        pytest.param(websockets_frame(b"ment", masked=True, opcode=Opcode.CONT), id="continuation"),
        pytest.param(bytes([0x40 | 0x81]) + websockets_frame(b"x", masked=True)[1:], id="rsv1"),
        pytest.param(websockets_frame(b"\xff\xfe", masked=True), id="invalid-utf8"),
        pytest.param(websockets_frame(b"hello", masked=False), id="unmasked-from-a-client"),
        pytest.param(websockets_frame(b"y" * 200, masked=True), id="over-max-size"),
    ],
)
def test_split_texts_stops_at_anything_but_a_plain_text_frame(odd: bytes) -> None:
    first = websockets_frame(b'{"type":"a"}', masked=True)
    after = websockets_frame(b'{"type":"b"}', masked=True)
    messages, end, other = split_texts(first + odd + after, masked=True, max_size=100)
    assert messages == ['{"type":"a"}']
    assert end == len(first)
    assert other is True


def test_split_texts_rejects_a_masked_frame_from_a_server() -> None:
    frame = websockets_frame(b"hello", masked=True)
    assert split_texts(frame, masked=False, max_size=MAX) == ([], 0, True)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 100_000])
@pytest.mark.parametrize("masked", [True, False])
def test_text_frame_is_read_back_by_websockets(size: int, masked: bool) -> None:
    payload = ("é" * size).encode()[:size] if size % 2 == 0 else b"a" * size
    reader = Protocol(Side.SERVER if masked else Side.CLIENT, max_size=None)
    reader.receive_data(text_frame(payload, MaskKeys().take() if masked else None))
    [event] = reader.events_received()
    assert (event.opcode, event.fin, bytes(event.data)) == (Opcode.TEXT, True, payload)
    assert reader.parser_exc is None


def test_mask_keys_are_four_fresh_bytes_and_refill() -> None:
    keys = MaskKeys(pool_bytes=16)
    taken = [keys.take() for _ in range(40)]  # ten refills
    assert all(len(k) == 4 for k in taken)
    assert len(set(taken)) > 30  # 32 random bits each: repeats are vanishingly rare


# -- the caller's socket (uvicorn protocol) ---------------------------------------------------


class EchoApp:
    """Echoes each text message; holds off reading while `reading` is clear."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.reading.set()
        self.received: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            await self.reading.wait()
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            self.received.append(message["text"])
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[str, EchoApp, Any]]:
    app = EchoApp()
    async with serve_asgi(app, lifespan="off") as (port, server):
        yield f"ws://127.0.0.1:{port}/", app, server


class Spy:
    """Counts the frames that went through the fast lane (`TextStream.feed`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.frames = 0
        real = TextStream.feed

        def feed(stream: TextStream, data: bytes) -> Any:
            result = real(stream, data)
            self.frames += len(result[0])
            return result

        monkeypatch.setattr(TextStream, "feed", feed)


async def test_caller_socket_keeps_order_through_pings_and_fragments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(monkeypatch)
    sent = [f'{{"type":"t","n":{i},"pad":"{"é" * (i * 37 % 300)}"}}' for i in range(60)]
    sent += ["z" * 70_000]
    async with echo_server() as (url, app, _), connect(url, max_size=None, max_queue=None) as ws:
        for i, text in enumerate(sent):
            if i == 20:
                await ws.send(iter(["frag", "mented"]))  # one message in three frames
            if i % 25 == 0:
                await asyncio.wait_for(await ws.ping(b"p%d" % i), 10)  # answered by websockets
            await ws.send(text)
        echoed = [await asyncio.wait_for(ws.recv(), 10) for _ in range(len(sent) + 1)]
    expected = [*sent[:20], "fragmented", *sent[20:]]
    assert echoed == ["echo:" + t for t in expected]
    assert app.received == expected
    assert spy.frames >= len(sent) - 5  # all but the first few went through the fast lane


async def test_caller_socket_closes_1007_on_invalid_utf8_in_the_fast_lane() -> None:
    async with echo_server() as (url, _, _), connect(url) as ws:
        await ws.send("fine")
        assert await asyncio.wait_for(ws.recv(), 10) == "echo:fine"
        ws.transport.write(text_frame(b"\xff\xfe", MaskKeys().take()))  # bypasses ws's check
        with pytest.raises(websockets.ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1007


async def test_caller_socket_stops_reading_when_the_app_falls_behind() -> None:
    total = 3000
    async with echo_server() as (url, app, server), connect(url, max_queue=None) as ws:
        app.reading.clear()
        sender = asyncio.create_task(_send_all(ws, total))
        [protocol] = list(server.server_state.connections)
        deadline = asyncio.get_running_loop().time() + 20
        while protocol.transport.is_reading():  # waits for a state change, bounded
            assert asyncio.get_running_loop().time() < deadline, "never stopped reading"
            await asyncio.sleep(0.005)
        held = protocol.queue.qsize()
        assert QUEUE_HIGH <= held < total / 2
        app.reading.set()
        echoed = [await asyncio.wait_for(ws.recv(), 10) for _ in range(total)]
        await sender
    assert echoed == [f"echo:{i:06d}" + "." * 500 for i in range(total)]


async def _send_all(ws: Any, total: int) -> None:
    for i in range(total):
        await ws.send(f"{i:06d}" + "." * 500)


# -- the model's socket (websockets client connection) ----------------------------------------


@contextlib.asynccontextmanager
async def scripted_model(script: Any, connection: type = ServerConnection) -> AsyncIterator[str]:
    async with serve(
        script,
        "127.0.0.1",
        0,
        max_size=None,
        compression=None,
        create_connection=connection,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


@pytest.mark.parametrize("server_side", [ServerConnection, FastServerConnection])
async def test_model_socket_receives_in_order_through_pings_and_fragments(
    monkeypatch: pytest.MonkeyPatch, server_side: type
) -> None:
    """Both ends with a lane (as the relay and the offline model run) or only the client's."""
    spy = Spy(monkeypatch)
    sent = [f'{{"type":"response.output_audio.delta","n":{i}}}' for i in range(80)]
    sent.append("y" * 70_000)
    heard: list[str] = []

    async def model(ws: ServerConnection) -> None:
        for i, text in enumerate(sent):
            if i == 30:
                await ws.send(iter(["frag", "mented"]))
            if i % 30 == 0:
                await asyncio.wait_for(await ws.ping(), 10)  # the client answers via websockets
            await ws.send(text)
        async for message in ws:  # then read what the client sends, until it closes
            heard.append(str(message))

    async with scripted_model(model, server_side) as url:
        async with connect(url, create_connection=ModelWebSocket, max_size=None) as ws:
            got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(len(sent) + 1)]
            for i in range(100):
                await ws.send(f'{{"type":"input_audio_buffer.append","n":{i}}}')
            assert ws.fast_lane
    assert got == [*sent[:30], "fragmented", *sent[30:]]
    assert heard == [f'{{"type":"input_audio_buffer.append","n":{i}}}' for i in range(100)]
    lanes = 2 if server_side is FastServerConnection else 1  # the server's lane reads the sends
    assert spy.frames >= lanes * (len(sent) - 5)


async def test_model_socket_closes_1007_on_invalid_utf8() -> None:
    async def model(ws: ServerConnection) -> None:
        await ws.send("ok")
        ws.transport.write(bytes((0x81, 2)) + b"\xff\xfe")
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()

    async with scripted_model(model) as url:
        async with connect(url, create_connection=ModelWebSocket) as ws:
            assert await asyncio.wait_for(ws.recv(), 10) == "ok"
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.sent is not None and closed.value.sent.code == 1007


async def test_model_socket_send_after_close_raises_connection_closed() -> None:
    async def model(ws: ServerConnection) -> None:
        await ws.close()

    async with scripted_model(model) as url:
        async with connect(url, create_connection=ModelWebSocket) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            with pytest.raises(websockets.ConnectionClosed):
                await ws.send("too late")
