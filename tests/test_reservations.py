"""The booking rules that PostgreSQL enforces, on a real database."""

import asyncio
import datetime as dt
import re

import asyncpg
import pytest

from server.book import reservations
from server.book.database import create_pool
from server.book.models import ReservationRequest

TODAY = dt.date(2026, 11, 25)


def request(**overrides) -> ReservationRequest:
    fields = {
        "name": "Ada Lovelace",
        "phone_number": "+6598207272",
        "reservation_date": dt.date(2026, 12, 1),
        "reservation_time": dt.time(19, 30),
        "party_size": 4,
        "other_info": {},
    }
    fields.update(overrides)
    return ReservationRequest(**fields)


async def count(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM reservations")


async def test_create_then_find(pool):
    result = await reservations.book(pool, request(other_info={"notes": "window"}), TODAY)
    assert result.outcome == "created"
    found = await reservations.find(pool, "+6598207272")
    assert found == result.reservation
    assert found.other_info == {"notes": "window"}
    assert re.fullmatch(r"[2-9A-HJKMNP-Z]{6}", found.confirmation_number)


async def test_identical_repeat_returns_the_same_booking(pool):
    first = await reservations.book(pool, request(), TODAY)
    again = await reservations.book(pool, request(name="ada lovelace"), TODAY)
    assert again.outcome == "repeated"
    assert again.reservation.confirmation_number == first.reservation.confirmation_number
    assert await count(pool) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"reservation_time": dt.time(20, 0)},
        {"reservation_date": dt.date(2026, 12, 2)},
        {"party_size": 5},
        {"name": "Someone Else"},
        {"other_info": {"notes": "birthday"}},
    ],
)
async def test_different_booking_for_same_phone_conflicts(pool, change):
    first = await reservations.book(pool, request(), TODAY)
    other = await reservations.book(pool, request(**change), TODAY)
    assert other.outcome == "conflict"
    assert other.reservation == first.reservation  # names the existing date and time
    assert await count(pool) == 1


async def test_past_reservation_is_replaced(pool):
    old = await reservations.book(pool, request(reservation_date=dt.date(2026, 11, 1)), TODAY)
    new = await reservations.book(pool, request(), TODAY)
    assert new.outcome == "created"
    assert new.reservation.reservation_date == dt.date(2026, 12, 1)
    assert new.reservation.confirmation_number != old.reservation.confirmation_number
    assert await count(pool) == 1


async def test_todays_reservation_is_still_upcoming(pool):
    await reservations.book(pool, request(reservation_date=TODAY), TODAY)
    assert (await reservations.book(pool, request(), TODAY)).outcome == "conflict"


async def test_updated_at_is_kept_current(pool):
    created = (await reservations.book(pool, request(), TODAY)).reservation
    await pool.execute(
        "UPDATE reservations SET party_size = 6 WHERE phone_number = $1", created.phone_number
    )
    row = await reservations.find(pool, created.phone_number)
    assert row.updated_at > created.updated_at
    assert row.created_at == created.created_at


async def test_constraints_hold_even_for_raw_sql(pool):
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO reservations (phone_number, name, reservation_date, reservation_time,"
            " party_size, confirmation_number) VALUES ('+6598207272', 'A', '2026-12-01',"
            " '19:00', 21, 'ABCDEF')"
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO reservations (phone_number, name, reservation_date, reservation_time,"
            " party_size, confirmation_number) VALUES ('+6598207272', 'A', '2026-12-01',"
            " '19:00', 2, 'ABC0EF')"
        )


async def test_confirmation_collision_is_retried(pool, monkeypatch):
    first = await reservations.book(pool, request(), TODAY)
    drawn = iter([first.reservation.confirmation_number, "XYZ234"])
    monkeypatch.setattr(reservations, "new_confirmation_number", lambda: next(drawn))
    second = await reservations.book(pool, request(phone_number="+6581234567"), TODAY)
    assert second.outcome == "created"
    assert second.reservation.confirmation_number == "XYZ234"


async def test_concurrent_bookings_for_one_phone_from_two_pools(pool, settings):
    """Two pools (as two server processes would have) race 100 bookings for one phone."""
    other_pool = await create_pool(settings.database_url, settings)
    try:
        pools = [pool, other_pool]
        attempts = [
            reservations.book(
                pools[i % 2],
                request(party_size=2 + i % 3),  # three different bookings, each many times
                TODAY,
            )
            for i in range(100)
        ]
        results = await asyncio.gather(*attempts)
    finally:
        await other_pool.close()
    assert await count(pool) == 1
    outcomes = [r.outcome for r in results]
    assert outcomes.count("created") == 1
    winner = next(r.reservation for r in results if r.outcome == "created")
    for i, result in enumerate(results):
        assert result.reservation.confirmation_number == winner.confirmation_number
        same = 2 + i % 3 == winner.party_size
        expected = {"created", "repeated"} if same else {"conflict"}
        assert result.outcome in expected


async def test_concurrent_bookings_for_distinct_phones_all_land(pool):
    phones = [f"+65981{i:05d}" for i in range(200)]
    results = await asyncio.gather(
        *(reservations.book(pool, request(phone_number=p), TODAY) for p in phones)
    )
    assert {r.outcome for r in results} == {"created"}
    numbers = {r.reservation.confirmation_number for r in results}
    assert len(numbers) == 200
    assert await count(pool) == 200


async def test_seed_is_idempotent(pool):
    first = await reservations.seed(pool, TODAY)
    second = await reservations.seed(pool, TODAY)
    assert [r.outcome for r in first] == ["created"] * len(reservations.SEED_ROWS)
    assert [r.outcome for r in second] == ["repeated"] * len(reservations.SEED_ROWS)
