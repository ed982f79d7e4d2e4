"""Reading the book: one phone's upcoming booking, and the staff's pages of it by date."""

from __future__ import annotations

import base64
import datetime as dt

import asyncpg
import orjson

from server.book.db_errors import outage_as_unavailable
from server.book.rows import COLUMNS, HELD, Reservation

SELECT_BY_ID_SQL = f"SELECT {COLUMNS} FROM reservations WHERE id = $1"
SELECT_BY_PHONE_SQL = f"SELECT {COLUMNS} FROM reservations WHERE phone_number = $1 AND {HELD}"


# The staff book: one day (or everything from a day on), keyset-paginated on (date, time, id).
# Four plain statements rather than one with OR-ed NULL checks, so each can use the index.
def _list_sql(one_day: bool, after_cursor: bool) -> str:
    where = ["reservation_date = $1" if one_day else "reservation_date >= $1"]
    where.append("($2::text IS NULL OR status = $2)")
    if after_cursor:
        where.append("(reservation_date, reservation_time, id) > ($4, $5, $6)")
    return (
        f"SELECT {COLUMNS} FROM reservations WHERE {' AND '.join(where)}"
        " ORDER BY reservation_date, reservation_time, id LIMIT $3"
    )


LIST_SQL = {
    (day, cursor): _list_sql(day, cursor) for day in (True, False) for cursor in (True, False)
}


async def find_by_id(pool: asyncpg.Pool, reservation_id: int) -> Reservation | None:
    """The booking in row `reservation_id`, whatever its status (the guest's manage link)."""
    with outage_as_unavailable():
        row = await pool.fetchrow(SELECT_BY_ID_SQL, reservation_id)
    return Reservation.from_row(row) if row is not None else None


async def find(pool: asyncpg.Pool, phone_number: str) -> Reservation | None:
    """The booking (or request) held by an E.164 phone number, if any."""
    with outage_as_unavailable():
        row = await pool.fetchrow(SELECT_BY_PHONE_SQL, phone_number)
    return Reservation.from_row(row) if row is not None else None


class InvalidCursor(ValueError):
    """A `cursor` that this server did not hand out."""


def encode_cursor(last: Reservation) -> str:
    """Opaque to clients: where the next page starts, as (date, time, id) of the last row."""
    key = [last.reservation_date.isoformat(), last.reservation_time.isoformat(), last.id]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.date, dt.time, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        day, clock, row_id = orjson.loads(raw)
        key = (dt.date.fromisoformat(day), dt.time.fromisoformat(clock), int(row_id))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidCursor("cursor is not one this server handed out") from None
    if not 0 < key[2] < 2**63:
        raise InvalidCursor("cursor is not one this server handed out")
    return key


async def list_reservations(
    pool: asyncpg.Pool,
    *,
    day: dt.date | None,
    today: dt.date,
    status: str | None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[Reservation], str | None]:
    """One page of the book, by date and time: `day`'s bookings, or (no day) all from `today`.

    `status` None means any. Returns the page and the cursor of the next one (None at the end).
    """
    after = decode_cursor(cursor) if cursor else ()
    sql = LIST_SQL[(day is not None, bool(after))]
    with outage_as_unavailable():
        rows = await pool.fetch(sql, day or today, status, limit + 1, *after)
    items = [Reservation.from_row(row) for row in rows[:limit]]
    more = len(rows) > limit
    return items, encode_cursor(items[-1]) if more else None


async def ping(pool: asyncpg.Pool) -> None:
    """Raise `DatabaseUnavailable` unless the database answers."""
    with outage_as_unavailable():
        await pool.fetchval("SELECT 1")
