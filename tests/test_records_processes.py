"""Call records and metrics with real `python -m server` processes: killed, stopped, two workers.

- SIGKILL mid-call: the row holds what the call did up to one flush before, is at most
  CALL_RECORD_FLUSH_S stale, and is marked `interrupted` by the next process to start.
- SIGTERM mid-call: the row is complete (`server restarting`), written before the process exits.
- `--workers 2`: every call is one row, and /metrics from either worker adds both up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import websockets

from harness.processes import NO_CLIENT_LIMITS
from tests.conftest import free_socket
from tests.test_metrics import sample
from tests.test_relay import BOOK, LOOKUP, Caller
from tests.test_shutdown import ServerProcess

FLUSH_S = 0.5
DB_TIMEOUT_S = 1.0
STALE_S = 3 * FLUSH_S + DB_TIMEOUT_S  # the recorder's rule: three flushes and a write timeout
TIMEOUT = 30


def server_env(settings: Any, **extra: str) -> tuple[dict[str, str], int]:
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
        "CALL_RECORD_FLUSH_S": str(FLUSH_S),
        "DB_COMMAND_TIMEOUT_S": str(DB_TIMEOUT_S),
        **extra,
    }
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)  # each process runs its own offline model
    return env, port


@contextlib.asynccontextmanager
async def running(env: dict[str, str], args: list[str] | None = None, ready: int = 1):
    server = ServerProcess(env, args=args)
    try:
        await server.start(ready_lines=ready)
        yield server
    finally:
        # SIGTERM first: a supervisor stops its workers, which hold the log pipe open too
        if server.proc.returncode is None:
            server.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.proc.wait(), 40)
        await asyncio.wait_for(server.stop(), 20)


@contextlib.asynccontextmanager
async def call(port: int) -> AsyncIterator[Caller]:
    url = f"ws://127.0.0.1:{port}/v1/realtime"
    async with websockets.connect(url, max_size=None, max_queue=None) as ws:
        caller = Caller(ws)
        await caller.until("session.updated")
        yield caller


async def row_for(pool: asyncpg.Pool, text: str, **want: Any) -> dict[str, Any]:
    """The calls row whose transcript mentions `text`, once its columns equal `want`."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            row = await pool.fetchrow(
                "SELECT *, now() - last_seen AS age FROM calls"
                " WHERE transcript::text LIKE '%' || $1 || '%'",
                text,
            )
            if row is not None and all(row[k] == v for k, v in want.items()):
                return dict(row)
            await asyncio.sleep(0.05)


async def stale(pool: asyncpg.Pool, text: str) -> None:
    """Until the row is older than the recorder's staleness rule, by the database's clock."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            age = (await row_for(pool, text))["age"].total_seconds()
            if age > STALE_S:
                return
            await asyncio.sleep(0.1)


def phone() -> str:
    return f"86{uuid.uuid4().int % 10**6:06d}"


async def test_a_killed_server_leaves_a_fresh_row_marked_interrupted_at_the_next_start(
    settings, pool
):
    number = phone()
    env, port = server_env(settings)
    async with running(env) as server:
        caller_cm = call(port)
        caller = await caller_cm.__aenter__()
        await caller.say(BOOK.format(phone=number))
        code = (await caller.until("reservation.confirmed"))["confirmation_number"]
        # what the call did is in its row within one flush, while it still runs
        await row_for(pool, number, status="live", outcome="booked", confirmation_number=code)
        server.proc.send_signal(signal.SIGKILL)
        await server.proc.wait()
        with contextlib.suppress(websockets.ConnectionClosed, OSError):
            await caller_cm.__aexit__(None, None, None)
        left = await row_for(pool, number)
        assert left["status"] == "live" and left["ended_at"] is None
        assert left["age"].total_seconds() < 30  # at most one flush (0.5 s here) stale
        logs = "\n".join(server.raw)
        assert number not in logs  # the number is in the row only, never in a log line
        assert left["transcript"][0]["text"] == BOOK.format(phone=number)  # in full, for staff

    # The next process to start, once the row is stale by the database's clock, marks it.
    await stale(pool, number)
    env, _ = server_env(settings)
    async with running(env):
        row = await row_for(pool, number)
    assert row["status"] == "interrupted" and row["end_reason"] == "interrupted"
    assert row["ended_at"] == row["last_seen"] == left["last_seen"]
    assert (row["outcome"], row["confirmation_number"]) == ("booked", code)


async def test_sigterm_mid_call_writes_the_complete_row_before_exiting(settings, pool):
    number = phone()
    env, port = server_env(settings, CALL_RECORD_FLUSH_S="30")  # only the end can write it
    async with running(env) as server, call(port) as caller:
        await caller.say(LOOKUP.format(phone=number))
        await caller.until("reservation.not_found")
        server.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            await server.proc.wait()  # (uvicorn re-raises the signal once it has shut down)
        assert not [
            e for e in server.lines if e["logger"] == "server.records" and e["level"] != "info"
        ]
    row = await row_for(pool, number)
    assert (row["status"], row["end_reason"], row["outcome"]) == (
        "ended",
        "server restarting",
        "looked_up",
    )


async def test_two_workers_write_every_call_and_their_metrics_add_up(settings, pool):
    env, port = server_env(settings)
    numbers: list[str] = []
    async with running(env, ["--workers", "2"], ready=2) as server:
        async with asyncio.timeout(90):
            batch = 0
            while len({e["pid"] for e in server.lines if "call started" in e["msg"]}) < 2:
                assert batch < 10, "every call went to the same worker"
                new = [phone() for _ in range(4)]

                async def one(number: str) -> None:
                    async with call(port) as caller:
                        await caller.say(BOOK.format(phone=number))
                        await caller.until("reservation.confirmed")

                await asyncio.gather(*(one(n) for n in new))
                numbers.extend(new)
                batch += 1
        for number in numbers:
            row = await row_for(pool, number, status="ended")
            assert (row["channel"], row["outcome"]) == ("sdk", "booked")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(6):  # fresh connections: the kernel hands them to either worker
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=10
                ) as fresh:
                    text = (await fresh.get("/metrics")).text
                ended = sample(text, "voice_calls_ended_total", channel="sdk", outcome="booked")
                assert ended == len(numbers)
                booked = sample(text, "voice_reservations_total", action="book")
                assert booked == len(numbers)
                assert sample(text, "voice_calls_active") == 0
            assert (await http.get("/metrics")).status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await server.proc.wait() == 0


async def test_a_killed_workers_calls_stop_counting_as_active(settings, pool):
    env, port = server_env(settings)
    async with running(env, ["--workers", "2"], ready=2) as server:
        number = phone()
        async with call(port) as caller:
            await caller.say(LOOKUP.format(phone=number))
            await caller.until("reservation.not_found")
            await row_for(pool, number, status="live")  # its first flush is done
            started = next(e for e in server.lines if "call started" in e["msg"])
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                text = (await http.get("/metrics")).text
            assert sample(text, "voice_calls_active", channel="sdk") == 1
            os.kill(started["pid"], signal.SIGKILL)
            await server.wait_for_log(f"worker {started['pid']} exited")
        await server.wait_for_log("Application startup complete", count=3)  # its replacement
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(4):  # whichever worker answers
                text = (await http.get("/metrics")).text
                assert sample(text, "voice_calls_active") == 0
        # The killed worker's row is never lost: still live, or already marked interrupted when
        # its replacement started after the row went stale (a loaded machine starts slowly).
        row = await row_for(pool, number)
        assert row["status"] in ("live", "interrupted")
        server.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await server.proc.wait() == 0
