"""`python -m bench integrity`: the scenario of `harness.integrity`, printed and recorded."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.common import machine, server_dsn, throwaway_database, write_results
from harness import integrity


def main() -> None:
    async def scenario(admin: str) -> dict[str, Any]:
        async with throwaway_database(admin) as dsn:
            from server.book.database import open_database
            from server.settings import Settings

            db = await open_database(Settings(database_url=dsn, _env_file=None))
            await db.close()  # schema in place before two processes race to migrate
            return await integrity.run(dsn)

    with server_dsn() as admin:
        result = asyncio.run(scenario(admin))
    same, distinct = result["same_phone"], result["distinct_phones"]
    print("\nIntegrity: two server processes, one PostgreSQL")
    print(
        f"  {same['requests']} concurrent bookings, one phone: {same['rows']} row, "
        f"statuses {same['statuses']}, consistent: {same['answers_consistent_with_winner']} "
        f"({same['seconds']} s)"
    )
    print(
        f"  {distinct['requests']} bookings, distinct phones: {distinct['rows']} rows, "
        f"{distinct['unique_confirmation_numbers']} unique confirmation numbers, "
        f"{distinct['read_back_matching']} read back ({distinct['seconds']} s)"
    )
    print(f"written {write_results('integrity', {'machine': machine(), **result})}")
