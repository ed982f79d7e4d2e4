"""Nothing lost, nothing doubled: two server processes booking on one PostgreSQL at once.

Two `python -m server` processes share one database. 200 concurrent bookings for one phone
(three different bookings, each asked many times, spread over both processes) must end as exactly
one row, one 201, and 199 idempotent repeats (200) or conflicts (409). 1,000 concurrent bookings
for distinct phones must end as 1,000 rows with unique confirmation numbers, each read back.

`python -m bench integrity` prints the table (bench/integrity.py); `tests/test_integrity.py`
asserts the same run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx

from harness.processes import NO_CLIENT_LIMITS, free_port
from server.settings import PROJECT_ROOT

CONCURRENCY = 100  # requests in flight at once for the distinct-phone run


async def _start_server(dsn: str) -> tuple[asyncio.subprocess.Process, str]:
    """A server process, returned once its start-up is complete (read from its log)."""
    port = free_port()
    env = {
        **os.environ,
        **NO_CLIENT_LIMITS,
        "DATABASE_URL": dsn,
        "PORT": str(port),
        "LOG_LEVEL": "info",
    }
    env.pop("OPENAI_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    async with asyncio.timeout(60):
        while b"Application startup complete" not in (line := await proc.stderr.readline()):
            if not line:
                raise RuntimeError("a server process exited during start-up")
    _background.add(asyncio.create_task(_drain(proc.stderr)))
    return proc, f"http://127.0.0.1:{port}"


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading the log so the process never blocks on a full pipe."""
    while await stream.readline():
        pass


_background: set[asyncio.Task[None]] = set()


def _body(phone: str, day: dt.date, party_size: int = 2) -> dict[str, Any]:
    return {
        "name": "Integrity Check",
        "phone_number": phone,
        "party_size": party_size,
        "reservation_date": day.isoformat(),
        "reservation_time": "19:00",
    }


async def run(dsn: str, same_phone: int = 200, distinct: int = 1000) -> dict[str, Any]:
    """Run both scenarios against two fresh server processes; return what was observed."""
    day = dt.date.today() + dt.timedelta(days=10)
    servers = await asyncio.gather(_start_server(dsn), _start_server(dsn))
    urls = [url for _, url in servers]
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    try:
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            # 1. one phone, many processes, many requests at once
            phone = "+6581990000"
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"{urls[i % 2]}/api/reservations",
                        json=_body(phone, day, party_size=2 + i % 3),
                    )
                    for i in range(same_phone)
                )
            )
            same_s = time.perf_counter() - started
            statuses = Counter(r.status_code for r in answers)
            winner = next(r.json() for r in answers if r.status_code == 201)
            consistent = all(
                (r.status_code in (200, 201)) == (2 + i % 3 == winner["party_size"])
                and (
                    r.status_code != 409
                    or r.json()["error"]["existing"]["reservation_time"] == "19:00"
                )
                for i, r in enumerate(answers)
            )

            # 2. distinct phones, bounded concurrency, then every one read back
            gate = asyncio.Semaphore(CONCURRENCY)
            phones = [f"+65820{n:05d}" for n in range(distinct)]

            async def book(i: int) -> httpx.Response:
                async with gate:
                    return await http.post(
                        f"{urls[i % 2]}/api/reservations", json=_body(phones[i], day)
                    )

            async def read(i: int) -> httpx.Response:
                async with gate:
                    return await http.get(f"{urls[(i + 1) % 2]}/api/reservations/{phones[i]}")

            started = time.perf_counter()
            booked = await asyncio.gather(*(book(i) for i in range(distinct)))
            distinct_s = time.perf_counter() - started
            read_back = await asyncio.gather(*(read(i) for i in range(distinct)))
    finally:
        for proc, _ in servers:
            proc.terminate()
        await asyncio.gather(*(proc.wait() for proc, _ in servers))
        await asyncio.gather(*_background)
        _background.clear()

    codes = [r.json().get("confirmation_number") for r in booked]
    connection = await asyncpg.connect(dsn)
    try:
        rows_same = await connection.fetchval(
            "SELECT count(*) FROM reservations WHERE phone_number = $1", phone
        )
        rows_distinct = await connection.fetchval(
            "SELECT count(*) FROM reservations WHERE phone_number = ANY($1::text[])", phones
        )
    finally:
        await connection.close()
    return {
        "processes": 2,
        "same_phone": {
            "requests": same_phone,
            "seconds": round(same_s, 2),
            "statuses": dict(statuses),
            "rows": rows_same,
            "answers_consistent_with_winner": consistent,
        },
        "distinct_phones": {
            "requests": distinct,
            "seconds": round(distinct_s, 2),
            "created": sum(r.status_code == 201 for r in booked),
            "rows": rows_distinct,
            "unique_confirmation_numbers": len(set(codes)),
            "read_back_matching": sum(
                r.status_code == 200 and r.json()["confirmation_number"] == codes[i]
                for i, r in enumerate(read_back)
            ),
        },
    }
