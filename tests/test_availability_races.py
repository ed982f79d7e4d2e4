"""Overbooking is impossible under concurrency, across processes: the covers of one slot and the
tables of a plan, with PostgreSQL's exclusion constraint as the last word on double seating."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import httpx
import pytest

from server.book.restaurant import WEEKDAYS, RestaurantProfile
from tests.servers import server_process

EVERY_DAY = {day: [["18:00", "21:30"]] for day in WEEKDAYS}


async def store_profile(pool: asyncpg.Pool, profile: dict[str, Any]) -> None:
    """Written before the server processes start, so each reads it (no cache involved)."""
    stored = RestaurantProfile.model_validate(profile).to_json()
    await pool.execute(
        "INSERT INTO restaurant (id, profile) VALUES (1, $1)"
        " ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile",
        stored,
    )


@pytest.fixture
async def clean(pool):
    """The book empty, holds and profile included (the `pool` fixture resets them)."""
    return pool


def phone(i: int) -> str:
    return f"+65912{i:05d}"


async def book_on_two_processes(dsn: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST every booking at once, alternating between two server processes on one database."""
    async with (
        server_process(dsn) as first,
        server_process(dsn) as second,
        httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http,
    ):
        urls = [first.url, second.url]
        answers = await asyncio.gather(
            *(
                http.post(f"{urls[i % 2]}/api/reservations", json=body)
                for i, body in enumerate(bodies)
            )
        )
        assert first.errors() == [] and second.errors() == []
    return list(answers)


async def test_200_bookings_into_one_slot_of_20_covers_book_exactly_10(test_dsn, clean, settings):
    await store_profile(
        clean,
        {"availability": "rules", "hours": EVERY_DAY, "covers_per_slot": 20, "min_lead_minutes": 0},
    )
    day = (settings.today() + dt.timedelta(days=3)).isoformat()
    bodies = [
        {
            "name": f"Guest {i}",
            "phone_number": phone(i),
            "reservation_date": day,
            "reservation_time": "19:00",
            "party_size": 2,
        }
        for i in range(200)
    ]
    answers = await book_on_two_processes(test_dsn, bodies)
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 10 and statuses.count(409) == 190, sorted(set(statuses))
    for refused in (a.json() for a in answers if a.status_code == 409):
        assert refused["reason"] == "full"
        assert len(refused["alternatives"]) == 3
        assert {"date": day, "time": "19:00"} not in refused["alternatives"]
    covers = await clean.fetchval(
        "SELECT sum(party_size) FROM reservations WHERE status = 'confirmed'"
        " AND reservation_date = $1 AND reservation_time = '19:00'",
        dt.date.fromisoformat(day),
    )
    assert covers == 20
    history = await clean.fetchval("SELECT count(*) FROM reservation_history")
    assert history == 10  # a refusal writes nothing


async def test_100_bookings_on_5_tables_never_share_a_table(test_dsn, clean, settings):
    tables = [{"name": f"T{n}", "seats": 4} for n in range(1, 6)]
    await store_profile(
        clean,
        {
            "availability": "rules",
            "hours": EVERY_DAY,
            "tables": tables,
            "dining_minutes": {"4": 90},
            "min_lead_minutes": 0,
        },
    )
    day = (settings.today() + dt.timedelta(days=4)).isoformat()
    times = ["18:00", "18:30", "19:00", "19:30", "20:00"]  # 90' dining: neighbours overlap
    bodies = [
        {
            "name": f"Guest {i}",
            "phone_number": phone(1000 + i),
            "reservation_date": day,
            "reservation_time": times[i % len(times)],
            "party_size": 1 + i % 4,
        }
        for i in range(100)
    ]
    answers = await book_on_two_processes(test_dsn, bodies)
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {201, 409}, statuses
    booked = [a.json() for a in answers if a.status_code == 201]
    assert all(len(b["tables"]) == 1 for b in booked)
    assert all(a.json()["reason"] == "full" for a in answers if a.status_code == 409)
    # A table takes at most two of these (18:00 then 19:30, or 18:30 then 20:00), at least one.
    assert 5 <= len(booked) <= 10
    overlaps = await clean.fetchval(
        "SELECT count(*) FROM table_holds a JOIN table_holds b ON a.table_name = b.table_name"
        " AND a.reservation_id < b.reservation_id AND a.during && b.during"
    )
    assert overlaps == 0
    holds = await clean.fetchval("SELECT count(*) FROM table_holds")
    assert holds == len(booked)


async def test_postgresql_itself_refuses_a_double_seated_table(clean):
    start = dt.datetime(2030, 1, 1, 19, tzinfo=dt.UTC)
    insert = (
        "INSERT INTO table_holds (reservation_id, table_name, during)"
        " VALUES ($1, $2, tstzrange($3, $4, '[)'))"
    )
    hour = dt.timedelta(hours=1)
    await clean.execute(insert, 1, "T1", start, start + 2 * hour)
    with pytest.raises(asyncpg.ExclusionViolationError):
        await clean.execute(insert, 2, "T1", start + hour, start + 3 * hour)
    await clean.execute(insert, 3, "T1", start + 2 * hour, start + 3 * hour)  # back to back
    await clean.execute(insert, 4, "T2", start, start + 2 * hour)  # another table
