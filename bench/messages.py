"""`python -m bench messages`: what the guest-message outbox costs a booking.

Two `python -m server` processes run side by side, each on its own fresh database: one with
`MESSAGES=true` (every booking writes its text and its reminders, `REMINDERS_BEFORE=24h,2h`, in
its own transaction, and that process's sender claims and settles them), one with
`MESSAGES=false` (the same statement, writing no outbox rows). `bench.httpload` books against
each in turn, at 1 and at 50 concurrent clients, in three interleaved rounds (each run on an
empty book, so every request is a new booking) so that drift on a
shared machine hits both alike. No Twilio account is configured: each text is claimed and
recorded as `skipped_not_configured`, so the sender's database work is measured and the
carrier's network is not (it is off the booking's path in any case).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import asyncpg

from bench.common import machine, print_table, write_results
from bench.store import wait_healthy
from harness.databases import server_dsn, throwaway_database
from harness.processes import clean_env, free_port
from server.book.database import open_database
from server.settings import PROJECT_ROOT, Settings

CONCURRENCY = (1, 50)
SECONDS = 8.0
ROUNDS = 3


def _load(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.httpload",
            "--url",
            url,
            "--method",
            "POST",
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


async def _reset(dsn: str) -> None:
    """An empty book before each run: every POST is then a new booking (201), never a repeat."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE reservations, reservation_history, messages")
    finally:
        await conn.close()


async def _outbox_rows(dsn: str) -> dict[str, int]:
    database = await open_database(Settings(database_url=dsn, _env_file=None))
    try:
        rows = await database.pool.fetch(
            "SELECT status, count(*) AS n FROM messages GROUP BY status ORDER BY status"
        )
    finally:
        await database.close()
    return {row["status"]: int(row["n"]) for row in rows}


def _start(dsn: str, outbox: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = clean_env(
        DATABASE_URL=dsn,
        PORT=str(port),
        LOG_LEVEL="warning",
        MESSAGES="true" if outbox else "false",
        REMINDERS_BEFORE="24h,2h",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # no model: none is called
    )
    for name in ("TWILIO_ACCOUNT_SID", "SMS_FROM", "STAFF_TOKEN", "ACCESS_TOKEN"):
        env.pop(name, None)
    process = subprocess.Popen([sys.executable, "-m", "server"], env=env, cwd=PROJECT_ROOT)
    return process, f"http://127.0.0.1:{port}"


async def _run(admin: str, seconds: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    async with (
        throwaway_database(admin, "bench_msg_on") as on_dsn,
        throwaway_database(admin, "bench_msg_off") as off_dsn,
    ):
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            for mode, dsn in (("outbox", on_dsn), ("no outbox", off_dsn)):
                servers[mode] = await asyncio.to_thread(_start, dsn, mode == "outbox")
                await wait_healthy(servers[mode][1], servers[mode][0])
            rows = []
            for round_no in range(1, ROUNDS + 1):
                for concurrency in CONCURRENCY:
                    for mode, (_, url) in servers.items():
                        await _reset(on_dsn if mode == "outbox" else off_dsn)
                        result = await asyncio.to_thread(_load, url, concurrency, seconds)
                        rows.append({"mode": mode, "round": round_no, **result})
        finally:
            for process, _ in servers.values():
                process.terminate()
                await asyncio.to_thread(process.wait, 30)
        outbox = await _outbox_rows(on_dsn)
    return rows, outbox


def main(seconds: float = SECONDS) -> None:
    with server_dsn() as admin:
        rows, outbox = asyncio.run(_run(admin, seconds))
    columns = ["mode", "round", "concurrency", "requests_per_s", "p50_ms", "p99_ms", "statuses"]
    print_table("Messages: POST /api/reservations with and without the outbox", rows, columns)
    print(f"\noutbox rows written by the 'outbox' server: {outbox}")
    data = {
        "machine": machine(),
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "seconds_per_run": seconds,
        "runs": rows,
        "outbox_rows": outbox,
    }
    print(f"\nwritten {write_results('messages', data)}")


if __name__ == "__main__":
    main()
