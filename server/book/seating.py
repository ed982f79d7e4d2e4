"""The availability rules' SQL, inside a booking's own transaction: the lock that makes bookings
of one date take turns, the book the engine judges, and the table holds PostgreSQL guards.

Writers lock in one order: the phone's row (`FOR UPDATE`), then the date (here), then the
history lock (`reservations._record`), so no two writers can wait on each other in a circle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from server.book import availability as av
from server.book.db_errors import outage_as_unavailable
from server.book.restaurant import RestaurantProfile, parse_profile
from server.book.rows import COLUMNS, HELD, Reservation

# pg_advisory_xact_lock(class, day): one lock per date, held until the booking commits, so the
# re-check and the write of every booking of that date are one step. (The classes of other
# advisory locks in the project use the one-bigint form, which cannot collide with this.)
DATE_LOCK_CLASS = 7322
ONE_DAY = dt.timedelta(days=1)
# Past any booking horizon (max_days_ahead is at most 3650): a date this far from today is
# refused before any calendar arithmetic (its neighbours, the weeks searched for alternatives,
# its timezone), which would overflow near date.min and date.max.
FAR = dt.timedelta(days=3650 + 366)
DATE_LOCK_SQL = "SELECT pg_advisory_xact_lock($1::int, $2::int)"
PROFILE_SQL = "SELECT profile FROM restaurant WHERE id = 1"
BOOKINGS_SQL = f"""
SELECT id, reservation_date, reservation_time, party_size, status,
       (SELECT array_agg(h.table_name ORDER BY h.table_name) FROM table_holds h
         WHERE h.reservation_id = reservations.id) AS tables
FROM reservations
WHERE {HELD} AND reservation_date BETWEEN $1 AND $2
"""
HOLD_SQL = """
INSERT INTO table_holds (reservation_id, table_name, during)
SELECT $1, name, tstzrange($3, $4, '[)') FROM unnest($2::text[]) AS name
"""
RELEASE_SQL = "DELETE FROM table_holds WHERE reservation_id = $1"
UPCOMING_SQL = f"SELECT {COLUMNS} FROM reservations WHERE {HELD} AND reservation_date >= $1"


def out_of_reach(profile: RestaurantProfile, day: dt.date, now: dt.datetime) -> av.Decision | None:
    """The refusal of a date years away from today (nothing to search near it), else None."""
    today = profile.today(now)
    if day < today - FAR:
        return av.Decision(False, av.IN_THE_PAST)
    if day > today + FAR:
        return av.Decision(False, av.TOO_FAR)
    return None


async def rules(conn: asyncpg.Connection | asyncpg.Pool) -> RestaurantProfile:
    """The stored profile (the default, `always`, when none is stored yet)."""
    stored = await conn.fetchval(PROFILE_SQL)
    return parse_profile(stored) if stored is not None else RestaurantProfile()


def _booking(row: asyncpg.Record) -> av.Booking:
    tables = tuple(row["tables"]) if row["tables"] else None
    return av.Booking(
        row["id"],
        row["reservation_date"],
        row["reservation_time"],
        row["party_size"],
        row["status"],
        tables,
    )


async def bookings_between(
    conn: asyncpg.Connection | asyncpg.Pool, first: dt.date, last: dt.date
) -> list[av.Booking]:
    """Bookings and requests from `first` to `last`, as the engine needs them."""
    return [_booking(row) for row in await conn.fetch(BOOKINGS_SQL, first, last)]


async def lock_day(conn: asyncpg.Connection, day: dt.date) -> list[av.Booking]:
    """Take `day`'s lock, then read what a booking on `day` is judged against: that day and
    its neighbours (tables held across midnight)."""
    await conn.execute(DATE_LOCK_SQL, DATE_LOCK_CLASS, day.toordinal())
    return await bookings_between(conn, day - ONE_DAY, day + ONE_DAY)


async def judge(
    conn: asyncpg.Connection | asyncpg.Pool,
    profile: RestaurantProfile,
    bookings: list[av.Booking],
    slot: av.Request,
    now: dt.datetime,
    **options: Any,
) -> av.Decision:
    """The engine's decision on the day's book; a refusal reads the weeks after too, for its
    alternatives (most requests are accepted and never pay for that read)."""
    decision = av.decide(profile, bookings, slot, now, alternatives=0, **options)
    if decision.available or decision.request:
        return decision
    later = slot.day + (av.SEARCH_DAYS + 1) * ONE_DAY
    wider = await bookings_between(conn, slot.day - ONE_DAY, later)
    return av.decide(profile, wider, slot, now, **options)


async def hold(
    conn: asyncpg.Connection,
    profile: RestaurantProfile,
    reservation: Reservation,
    tables: Sequence[str] | None,
) -> Reservation:
    """Seat the booking at `tables` for its dining time (the exclusion constraint refuses a
    table already held then); returns the booking as it now stands."""
    await conn.execute(RELEASE_SQL, reservation.id)
    if not tables:
        return _with_tables(reservation, None)
    start, end = av.hold_span(
        profile, reservation.reservation_date, reservation.reservation_time, reservation.party_size
    )
    await conn.execute(HOLD_SQL, reservation.id, list(tables), start, end)
    return _with_tables(reservation, sorted(tables))


async def release(conn: asyncpg.Connection, reservation: Reservation) -> Reservation:
    """The booking gives up its tables (cancelled, or moved under `always`)."""
    await conn.execute(RELEASE_SQL, reservation.id)
    return _with_tables(reservation, None)


def _with_tables(reservation: Reservation, tables: list[str] | None) -> Reservation:
    return replace(reservation, tables=tables)


# --- reads outside a booking: what the caller, the REST API and the staff are told -------------


async def check(pool: asyncpg.Pool, slot: av.Request, now: dt.datetime) -> av.Decision:
    """The engine's answer for one time, from the stored profile and book (no lock: a booking
    judges again under its date's lock when it writes)."""
    with outage_as_unavailable():
        profile = await rules(pool)
        if not profile.rules:
            return av.Decision(True)
        far = out_of_reach(profile, slot.day, now)
        if far is not None:
            return far
        bookings = await bookings_between(pool, slot.day - ONE_DAY, slot.day + ONE_DAY)
        return await judge(pool, profile, bookings, slot, now)


async def day_state(
    pool: asyncpg.Pool, day: dt.date, party_size: int, now: dt.datetime
) -> tuple[RestaurantProfile, av.DayState]:
    """Every arrival slot of `day` for a party, each with its answer (a date years away: not
    open, `in_the_past` or `too_far`, whatever `availability` says)."""
    with outage_as_unavailable():
        profile = await rules(pool)
        far = out_of_reach(profile, day, now)
        if far is not None:
            return profile, av.DayState(False, far.reason, [])
        first, last = day - ONE_DAY, day + ONE_DAY
        bookings = await bookings_between(pool, first, last) if profile.rules else []
    return profile, av.day_availability(profile, bookings, day, party_size, now)


async def conflicts(
    pool: asyncpg.Pool, today: dt.date, now: dt.datetime
) -> list[tuple[Reservation, str]]:
    """Upcoming bookings and requests that the current rules would refuse, with the reason."""
    with outage_as_unavailable():
        profile = await rules(pool)
        rows = await pool.fetch(UPCOMING_SQL, today)
    held = {row["id"]: Reservation.from_row(row) for row in rows}
    bookings = [_booking(row) for row in rows]
    return [(held[b.id], reason) for b, reason in av.conflicts(profile, bookings, now)]
