"""Who may connect, and the limits a caller meets: token, Origin, event rate."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import orjson
import pytest
import websockets
from openai import AsyncOpenAI
from pydantic import SecretStr

import offline_model
from tests.conftest import serve_app

TOKEN = "test-access-token-123"


@pytest.fixture(scope="module")
async def model():
    async with offline_model.OfflineModel(pace=0.002) as running:
        yield running


@pytest.fixture(scope="module")
async def guarded(settings, database, model):
    locked = settings.model_copy(
        update={
            "openai_base_url": model.url,
            "access_token": SecretStr(TOKEN),
            "allowed_origins": "http://127.0.0.1:8000, https://book.example.com",
        }
    )
    async with serve_app(locked) as live:
        yield live


async def first_event_and_close(url: str, **connect) -> tuple[dict, int | None, str]:
    async with websockets.connect(url, max_queue=None, **connect) as ws:
        async with asyncio.timeout(10):
            event = orjson.loads(await ws.recv())
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as closed:
                return event, closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ("", {}, "unauthorized"),
        ("?token=wrong", {}, "unauthorized"),
        ("", {"Authorization": "Bearer wrong"}, "unauthorized"),
        (f"?token={TOKEN}", {"Origin": "https://evil.example.com"}, "origin_not_allowed"),
    ],
)
async def test_socket_refusals_close_1008_with_a_reason(guarded, query, headers, code):
    event, close_code, reason = await first_event_and_close(
        f"{guarded.ws_url}/v1/realtime{query}", additional_headers=headers
    )
    assert event["type"] == "error" and event["error"]["code"] == code
    assert close_code == 1008
    assert reason


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        (f"?token={TOKEN}", {}),
        ("", {"Authorization": f"Bearer {TOKEN}"}),
        ("", {"X-Access-Token": TOKEN}),
        (f"?token={TOKEN}", {"Origin": "https://book.example.com"}),
        (f"?token={TOKEN}", {"Origin": "http://127.0.0.1:8000/"}),
    ],
)
async def test_socket_accepts_the_token_in_each_place(guarded, query, headers):
    url = f"{guarded.ws_url}/v1/realtime{query}"
    async with websockets.connect(url, additional_headers=headers, max_queue=None) as ws:
        async with asyncio.timeout(10):
            while (event := orjson.loads(await ws.recv()))["type"] != "session.updated":
                assert event["type"] != "error", event


async def test_sdk_client_passes_the_token_as_its_api_key(guarded):
    client = AsyncOpenAI(api_key=TOKEN, websocket_base_url=f"{guarded.ws_url}/v1")
    async with client.realtime.connect(
        model="gpt-realtime", websocket_connection_options={"max_queue": None}
    ) as conn:
        async with asyncio.timeout(10):
            while (event := orjson.loads(await conn.recv_bytes()))["type"] != "session.updated":
                assert event["type"] != "error"


async def test_rest_requires_the_bearer_token(guarded, pool, settings):
    body = {
        "name": "Ada",
        "phone_number": "81230042",
        "reservation_date": (settings.today() + dt.timedelta(days=1)).isoformat(),
        "reservation_time": "19:00",
        "party_size": 2,
    }
    async with httpx.AsyncClient(base_url=guarded.url, timeout=10) as http:
        for response in [
            await http.post("/api/reservations", json=body),
            await http.post("/api/reservations", json=body, headers={"Authorization": "Bearer x"}),
            await http.get("/api/reservations/81230042"),
        ]:
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.post("/api/reservations", json=body, headers=auth)).status_code == 201
        assert (await http.get("/api/reservations/81230042", headers=auth)).status_code == 200
        assert (await http.get("/healthz")).status_code == 200  # probes need no token


async def test_event_flood_is_refused_with_one_error_and_the_call_lives(settings, database, model):
    limited = settings.model_copy(
        update={"openai_base_url": model.url, "max_client_events_per_s": 5}
    )
    async with (
        serve_app(limited) as live,
        websockets.connect(f"{live.ws_url}/v1/realtime", max_queue=None) as ws,
    ):
        async with asyncio.timeout(10):
            while orjson.loads(await ws.recv())["type"] != "session.updated":
                pass
            for _ in range(40):  # a burst far over 5/s (bursts of 10 pass)
                await ws.send('{"type":"input_audio_buffer.clear"}')
            cleared, errors = 0, []
            while cleared < 10 or not errors:
                event = orjson.loads(await ws.recv())
                if event["type"] == "input_audio_buffer.cleared":
                    cleared += 1
                elif event["type"] == "error":
                    errors.append(event["error"]["code"])
            assert errors == ["rate_limited"]  # said once, not 30 times
            assert ws.state is websockets.State.OPEN
