"""The real process: SIGTERM ends calls politely, and the logs keep secrets and phones out.

`python -m server` runs as a child process against the test database (through a proxy that can
hold the database's answers) and a local model that requires an API key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys

import httpx
import orjson
import pytest
import websockets

import offline_model
from harness.processes import NO_CLIENT_LIMITS
from server.settings import PROJECT_ROOT
from tests.conftest import free_socket
from tests.netproxy import CuttableProxy

KEY = "sk-test-secret-key-0123456789"
PHONE_REST = "81237001"
PHONE_CALL = "81237002"


class ServerProcess:
    def __init__(self, env: dict[str, str], args: list[str] | None = None):
        self.env = env
        self.args = args or []
        self.lines: list[dict] = []
        self.raw: list[str] = []
        self._new_line = asyncio.Event()

    async def start(self, ready_lines: int = 1) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            *self.args,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_for_log("Application startup complete", count=ready_lines)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode().rstrip("\n")
            self.raw.append(text)
            self.lines.append(json.loads(text))  # every line must be JSON
            self._new_line.set()

    async def wait_for_log(self, fragment: str, count: int = 1) -> dict:
        """The `count`-th line (of the whole log) that contains `fragment`."""
        async with asyncio.timeout(30):
            seen = found = 0
            while True:
                for entry in self.lines[seen:]:
                    if fragment in entry["msg"]:
                        found += 1
                        if found == count:
                            return entry
                seen = len(self.lines)
                self._new_line.clear()
                if self._reader.done():
                    raise AssertionError(f"server exited before logging {fragment!r}: {self.raw}")
                await self._new_line.wait()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await self._reader


@pytest.fixture
async def running(settings, pool):
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    async with offline_model.OfflineModel(api_key=KEY, pace=0.002) as model:
        database = await CuttableProxy.for_dsn(settings.database_url).start()
        env = {
            **os.environ,
            **NO_CLIENT_LIMITS,
            "DATABASE_URL": database.dsn(),
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": model.url,
            "PORT": str(port),
            "LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
            "SHUTDOWN_GRACE_S": "15",
        }
        server = ServerProcess(env)
        try:
            await server.start()
            yield server, port, database
        finally:
            await server.stop()
            await database.close()


def book_text(phone: str) -> str:
    return (
        "I'd like to book a table for 2 tomorrow at 8pm. My name is Grace Hopper, "
        f"my phone is {phone}."
    )


async def test_sigterm_lets_a_booking_in_flight_finish_then_closes_1012(running, settings, pool):
    server, port, database = running
    tomorrow = (settings.today() + dt.timedelta(days=1)).isoformat()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        body = {
            "name": "Ada",
            "phone_number": PHONE_REST,
            "reservation_date": tomorrow,
            "reservation_time": "19:00",
            "party_size": 2,
        }
        assert (await http.post("/api/reservations", json=body)).status_code == 201
        assert (await http.get(f"/api/reservations/%2B65{PHONE_REST}")).status_code == 200

    url = f"ws://127.0.0.1:{port}/v1/realtime"
    async with websockets.connect(url, max_queue=None) as ws:

        async def until(kind: str) -> dict:
            async with asyncio.timeout(20):
                while (event := orjson.loads(await ws.recv()))["type"] != kind:
                    pass
                return event

        await until("session.updated")
        database.stall()  # the booking will hang in the database until we let it through
        for event in [
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": book_text(PHONE_CALL)}],
                },
            },
            {"type": "response.create"},
        ]:
            await ws.send(orjson.dumps(event).decode())
        await until("response.function_call_arguments.done")  # the tool call is in flight

        server.proc.send_signal(signal.SIGTERM)
        await server.wait_for_log("ending calls before shutting down")
        database.restore()

        confirmed = await until("reservation.confirmed")  # the booking finished during shutdown
        error = await until("error")
        assert error["error"]["code"] == "server_restarting"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await until("never")
        assert closed.value.rcvd.code == 1012

    async with asyncio.timeout(20):
        await server.proc.wait()  # exits by itself, within the grace period
    stored = await pool.fetchval(
        "SELECT confirmation_number FROM reservations WHERE phone_number = $1", f"+65{PHONE_CALL}"
    )
    assert stored == confirmed["confirmation_number"]

    # The logs: JSON lines, the call's lines tagged with its session, no key, no full phone.
    text = "\n".join(server.raw)
    assert KEY not in text
    for phone in (PHONE_REST, PHONE_CALL):
        assert phone not in text and phone[:4] + " " + phone[4:] not in text
    assert "****7001" in text  # the access log's path, masked
    messages = [e["msg"] for e in server.lines]
    tool = next(i for i, m in enumerate(messages) if m.startswith("tool make_reservation ok"))
    drain = next(i for i, m in enumerate(messages) if "ending calls before shutting down" in m)
    assert drain < tool  # the booking was still in flight when the shutdown began
    assert server.lines[tool]["session"].startswith("s")
    assert "session" not in server.lines[drain]  # the shutdown belongs to no call
    assert all("audio" not in e["msg"] or "frames" in e["msg"] for e in server.lines)
