"""Availability benchmark: check_availability and a booking, `always` against `rules`.

The profile with rules is the 40-seat bistro of docs/availability.md (lunch and dinner every day,
20 covers a slot, 15 tables and 3 combinations). Each mode runs in its own throwaway database:

- check_availability: the model's tool handler (validation, the engine, one profile read and one
  read of the book), 1 caller x 200 checks, then 100 callers x 5 at once;
- a booking (`reservations.book`: the date's lock, the engine inside the transaction, the table
  holds, the history row), 1 caller x 200, then 100 callers x 5 at once, spread over 30 days;
- 100 bookings at once into one date: every one waits for that date's lock in turn, the worst
  case of the design.

Refusals are timed too (a `full` refusal computes its alternatives); the outcome counts say how
many of each. `python -m bench availability`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time
from typing import Any

import asyncpg

from bench.common import (
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
from server.book.restaurant import WEEKDAYS, parse_profile
from server.settings import Settings
from tools.availability import check_availability
from tools.registry import ToolContext

OPS = 200  # for one caller
CALLERS = 100
OPS_PER_CALLER = 5
DAYS = 30

BISTRO: dict[str, Any] = {
    "availability": "rules",
    "hours": {day: [["11:30", "14:00"], ["18:00", "21:30"]] for day in WEEKDAYS},
    "covers_per_slot": 20,
    "dining_minutes": {"2": 90, "4": 120, "8": 150},
    "tables": [{"name": f"A{n}", "seats": 2} for n in range(1, 11)]
    + [{"name": f"B{n}", "seats": 4, "min_party": 3} for n in range(1, 6)],
    "combinations": [["A1", "A2"], ["B1", "B2"], ["B3", "B4", "B5"]],
    "max_party_size": 8,
    "min_lead_minutes": 60,
    "max_days_ahead": 60,
}
TIMES = [dt.time(h, m) for h in (12, 13, 18, 19, 20, 21) for m in (0, 15, 30, 45)]


async def store_profile(pool: asyncpg.Pool, profile: dict[str, Any]) -> None:
    await pool.execute(
        "INSERT INTO restaurant (id, profile) VALUES (1, $1)"
        " ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile",
        parse_profile(profile).to_json(),
    )


class Run:
    """One mode's database, and the timings and outcomes of its operations."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, mode: str):
        self.pool, self.settings, self.mode = pool, settings, mode
        self.ctx = ToolContext(pool=pool, settings=settings)
        self.today = settings.today()
        self.phones = iter(range(10**6))
        self.random = random.Random(7)

    def slot(self) -> tuple[dt.date, dt.time]:
        return self.today + dt.timedelta(days=self.random.randint(2, DAYS)), self.random.choice(
            TIMES
        )

    async def check(self, samples: list[float], outcomes: dict[str, int]) -> None:
        day, clock = self.slot()
        args = {"date": day.isoformat(), "time": f"{clock:%H:%M}", "party_size": 2}
        started = time.perf_counter()
        result = await check_availability(args, self.ctx)
        samples.append(time.perf_counter() - started)
        key = "available" if result.output["available"] else str(result.output["reason"])
        outcomes[key] = outcomes.get(key, 0) + 1

    async def book(
        self, samples: list[float], outcomes: dict[str, int], day: dt.date | None = None
    ) -> None:
        when, clock = self.slot()
        request = ReservationRequest(
            name="Bench",
            phone_number=f"+6581{next(self.phones):06d}",
            party_size=self.random.choice((2, 2, 2, 3, 4)),
            reservation_date=day or when,
            reservation_time=clock,
        )
        started = time.perf_counter()
        try:
            result = await reservations.book(self.pool, request, self.today)
            key = result.outcome
        except reservations.SlotUnavailable as refused:
            key = str(refused.decision.reason)
        samples.append(time.perf_counter() - started)
        outcomes[key] = outcomes.get(key, 0) + 1

    async def measure(self, what: str, op: Any, callers: int, each: int) -> dict[str, Any]:
        samples: list[float] = []
        outcomes: dict[str, int] = {}

        async def caller() -> None:
            for _ in range(each):
                await op(samples, outcomes)

        await asyncio.gather(*(caller() for _ in range(callers)))
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        row = {"mode": self.mode, "what": f"{what} x{callers}", **summary_ms(samples)}
        return {**row, "outcomes": outcome}


async def run_mode(admin: str, mode: str) -> list[dict[str, Any]]:
    async with throwaway_database(admin) as dsn:
        settings = Settings(database_url=dsn, _env_file=None)
        database = await open_database(settings)
        try:
            await store_profile(database.pool, BISTRO if mode == "rules" else {})
            run = Run(database.pool, settings, mode)
            one_day = settings.today() + dt.timedelta(days=DAYS + 5)
            return [
                await run.measure("booking", run.book, 1, OPS),
                await run.measure("booking", run.book, CALLERS, OPS_PER_CALLER),
                await run.measure("check_availability", run.check, 1, OPS),
                await run.measure("check_availability", run.check, CALLERS, OPS_PER_CALLER),
                await run.measure(
                    "booking, one date",
                    lambda s, o: run.book(s, o, day=one_day),
                    CALLERS,
                    1,
                ),
            ]
        finally:
            await database.close()


async def _all(admin: str) -> list[dict[str, Any]]:
    return await run_mode(admin, "always") + await run_mode(admin, "rules")


def main() -> None:
    with server_dsn() as admin:
        rows = asyncio.run(_all(admin))
    columns = ["mode", "what", "n", "p50_ms", "p99_ms", "max_ms", "outcomes"]
    print_table("Availability: always against rules (the 40-seat bistro)", rows, columns)
    data = {
        "machine": machine(),
        "database": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "rows": rows,
    }
    print(f"\nwritten {write_results('availability', data)}")


if __name__ == "__main__":
    main()
