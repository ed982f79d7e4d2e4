"""`python -m server --workers 2`: two processes on one port, each with its own pool and model.

The real command runs as a child process against the test database with no API key, so each
worker starts its own offline model. Calls and REST requests arrive until both workers have
served calls; every booking made through either is then read back through the port.
"""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest
import websockets

from harness.processes import NO_CLIENT_LIMITS
from tests.conftest import free_socket
from tests.test_relay import Caller
from tests.test_shutdown import ServerProcess

WORKERS = 2


def book(phone: str) -> str:
    return (
        "I'd like to book a table for 2 tomorrow at 8pm. My name is Ada Lovelace, "
        f"my phone is {phone}."
    )


@pytest.fixture
async def two_workers(settings, pool):
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {
        **os.environ,
        **NO_CLIENT_LIMITS,
        "DATABASE_URL": settings.database_url or "",
        "PORT": str(port),
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    server = ServerProcess(env, args=["--workers", str(WORKERS)])
    try:
        await server.start(ready_lines=WORKERS)
        yield server, port
    finally:
        await server.stop()


async def one_call(port: int, phone: str) -> dict:
    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime", max_size=None) as ws:
        caller = Caller(ws)
        await caller.until("session.updated")
        await caller.say(book(phone))
        return await caller.until("reservation.confirmed")


async def test_two_workers_serve_calls_and_bookings_on_one_port(two_workers):
    server, port = two_workers
    started = [e for e in server.lines if "Application startup complete" in e["msg"]]
    assert len({e["pid"] for e in started}) == WORKERS
    offline = [e for e in server.lines if "using the offline model" in e["msg"]]
    assert len({e["pid"] for e in offline}) == WORKERS  # one offline model per worker

    confirmed: dict[str, str] = {}
    call_pids: set[int] = set()
    async with asyncio.timeout(90):
        batch = 0
        while len(call_pids) < WORKERS:  # the kernel spreads connections; keep calling
            assert batch < 10, "every call went to the same worker"
            phones = [f"8155{batch:02d}{n:02d}" for n in range(6)]
            events = await asyncio.gather(*(one_call(port, phone) for phone in phones))
            for phone, event in zip(phones, events, strict=True):
                confirmed[phone] = event["reservation"]["confirmation_number"]
            call_pids = {e["pid"] for e in server.lines if "call started" in e["msg"]}
            batch += 1

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for phone, number in confirmed.items():
            response = await http.get(f"/api/reservations/{phone}")
            assert response.status_code == 200
            assert response.json()["confirmation_number"] == number

    server.proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await server.proc.wait() == 0
    finished = {e["pid"] for e in server.lines if "Finished server process" in e["msg"]}
    assert finished == {e["pid"] for e in started}  # every worker stopped cleanly
