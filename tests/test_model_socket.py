"""The model socket on websockets' own client: the URL and headers the SDK would have used."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import ServerConnection, serve

from server.call.model import ModelClient, ModelUnavailable


def client(base_url: str | None, websocket_base_url: str | None = None) -> ModelClient:
    return ModelClient(
        api_key="sk-test",
        base_url=base_url,
        model="gpt-realtime",
        timeout_s=5,
        websocket_base_url=websocket_base_url,
    )


@pytest.mark.parametrize(
    ("base_url", "websocket_base_url", "call_id", "expected"),
    [
        (None, None, None, "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("http://127.0.0.1:9/v1", None, None, "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime"),
        (
            "https://proxy.example/v1/",
            None,
            "rtc_1",
            "wss://proxy.example/v1/realtime?call_id=rtc_1",
        ),
        ("http://h:1/v1", "ws://h:2/v1", None, "ws://h:2/v1/realtime?model=gpt-realtime"),
        ("http://h:1/v1?x=1", None, None, "ws://h:1/v1/realtime?x=1&model=gpt-realtime"),
    ],
)
async def test_the_socket_url_is_the_sdks(
    base_url: str | None, websocket_base_url: str | None, call_id: str | None, expected: str
) -> None:
    model = client(base_url, websocket_base_url)
    try:
        assert model.url(call_id) == expected
    finally:
        await model.close()


async def test_frames_go_both_ways_as_text_with_the_key_as_bearer() -> None:
    seen: dict[str, str] = {}

    async def echo(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["path"] = ws.request.path
        seen["auth"] = ws.request.headers.get("Authorization", "")
        seen["extensions"] = ws.request.headers.get("Sec-WebSocket-Extensions") or ""
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        model = client(f"http://127.0.0.1:{port}/v1")
        try:
            connection = await model.connect()
            await connection.send('{"type":"x","text":"é"}')
            async with asyncio.timeout(5):
                assert await connection.recv() == '{"type":"x","text":"é"}'
            await connection.close()
        finally:
            await model.close()
    assert seen == {
        "path": "/v1/realtime?model=gpt-realtime",
        "auth": "Bearer sk-test",
        "extensions": "",  # no permessage-deflate
    }


async def test_a_refused_key_says_so() -> None:
    async def refuse(ws: ServerConnection) -> None:  # never reached
        await ws.close()

    def process_request(ws: ServerConnection, request: object) -> object:
        return ws.respond(401, "no\n")

    async with serve(refuse, "127.0.0.1", 0, process_request=process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        model = client(f"http://127.0.0.1:{port}/v1")
        try:
            with pytest.raises(ModelUnavailable) as refused:
                await model.connect()
        finally:
            await model.close()
    assert refused.value.code == "model_auth_failed"
