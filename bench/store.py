"""Reservation store benchmark: query latency through the pool, and REST throughput.

Queries: 50 concurrent callers each book then look up distinct phones through one pool
(the server's default size), timing every call. REST: one uvicorn worker (`python -m server`)
under 50 keep-alive clients from a separate load-generator process, POST then GET.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time

import httpx

from bench.common import (
    NO_CLIENT_LIMITS,
    machine,
    print_table,
    server_dsn,
    summary_ms,
    throwaway_database,
    write_results,
)
from server.book import reservations
from server.book.database import open_database
from server.book.models import ReservationRequest
from server.settings import PROJECT_ROOT, Settings

CALLERS = 50
OPS_PER_CALLER = 100
REST_SECONDS = 5.0


async def query_bench(dsn: str, callers: int, prefix: str) -> list[dict]:
    """`callers` concurrent callers each book then look up OPS_PER_CALLER distinct phones.

    With one caller the figure is the query itself; with 50 it includes waiting for one of the
    pool's connections and for the two cores that client, server and PostgreSQL share.
    """
    settings = Settings(database_url=dsn, _env_file=None)
    database = await open_database(settings)
    today = settings.today()
    creates: list[float] = []
    lookups: list[float] = []

    async def caller(index: int) -> None:
        for n in range(OPS_PER_CALLER):
            phone = f"+65{prefix}{index:02d}{n:05d}"
            request = ReservationRequest(
                name="Bench",
                phone_number=phone,
                party_size=2,
                reservation_date=today + dt.timedelta(days=7),
                reservation_time=dt.time(19),
            )
            started = time.perf_counter()
            result = await reservations.book(database.pool, request, today)
            creates.append(time.perf_counter() - started)
            assert result.outcome == "created"
        for n in range(OPS_PER_CALLER):
            started = time.perf_counter()
            found = await reservations.find(database.pool, f"+65{prefix}{index:02d}{n:05d}")
            lookups.append(time.perf_counter() - started)
            assert found is not None

    try:
        await asyncio.gather(*(caller(i) for i in range(callers)))
    finally:
        await database.close()
    pool_size = settings.db_pool_max_size
    return [
        {"what": f"create (book) x{callers} callers, pool {pool_size}", **summary_ms(creates)},
        {"what": f"lookup (find) x{callers} callers, pool {pool_size}", **summary_ms(lookups)},
    ]


async def wait_healthy(url: str, process: subprocess.Popen, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("server did not become healthy")


def rest_bench(dsn: str, port: int = 8765) -> list[dict]:
    env = {
        **os.environ,
        **NO_CLIENT_LIMITS,
        "DATABASE_URL": dsn,
        "LOG_LEVEL": "warning",
        "PORT": str(port),
    }
    server = subprocess.Popen([sys.executable, "-m", "server"], env=env, cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_healthy(url, server))
        rows = []
        for method in ("POST", "GET"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.httpload",
                    "--url",
                    url,
                    "--method",
                    method,
                    "--concurrency",
                    str(CALLERS),
                    "--seconds",
                    str(REST_SECONDS),
                ],
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
            result = json.loads(out.stdout)
            rows.append({"what": f"REST {method} x{CALLERS} clients, 1 worker", **result})
        return rows
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _queries(admin: str) -> tuple[list[dict], list[dict]]:
    async with throwaway_database(admin) as dsn:
        queries = await query_bench(dsn, 1, "9") + await query_bench(dsn, CALLERS, "8")
    async with throwaway_database(admin) as dsn:
        rest = await asyncio.to_thread(rest_bench, dsn)
    return queries, rest


def main() -> None:
    with server_dsn() as admin:
        queries, rest = asyncio.run(_queries(admin))
    columns = ["what", "n", "p50_ms", "p90_ms", "p99_ms", "max_ms"]
    print_table("Store: query latency through the pool", queries, columns)
    print_table("Store: REST", rest, ["what", "requests_per_s", *columns[1:], "statuses"])
    data = {
        "machine": machine(),
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "queries": queries,
        "rest": rest,
    }
    print(f"\nwritten {write_results('store', data)}")


if __name__ == "__main__":
    main()
