"""Every SQL statement of the product, and the booking rules that need the database.

REST handlers, the staff book and the model's tools all call these functions, so the front doors
cannot disagree. Rules enforced by PostgreSQL itself rather than by check-then-insert:

- one confirmed booking per phone number (a unique index over confirmed rows): concurrent
  bookings from any number of processes end with exactly one;
- a booking whose date has passed is replaced, an upcoming one never is;
- confirmation numbers are unique (a collision is retried with a fresh number);
- every write locks the row it starts from (`FOR UPDATE`), so a change, a cancellation and a
  booking for one phone at once, from any processes, are applied one after the other: no lost
  update;
- every write appends its history row in the same transaction (see `_record`), and that row's
  NOTIFY reaches every process's live feed when the transaction commits.

Each function runs inside `outage_as_unavailable()`: a database that went away is
`DatabaseUnavailable`, whatever asyncpg raised.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from server.book.db_errors import DatabaseUnavailable, outage_as_unavailable
from server.book.etag import etag_of, if_match_allows
from server.book.models import ReservationRequest

__all__ = ["DatabaseUnavailable"]  # re-exported: REST and the tools catch it from here

# Voice-friendly: no 0/O, 1/I/L that a caller would confuse when it is read out.
CONFIRMATION_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CONFIRMATION_LENGTH = 6

# The channel every history row is announced on (its payload: the row's seq).
HISTORY_CHANNEL = "reservation_history"
# Held from a history row's insert to its commit, so seq numbers follow commit order: a reader
# that has seen seq N can never later meet a row < N committed after it. Any constant works.
HISTORY_LOCK_ID = 7_321_004_118

COLUMNS = (
    "id, phone_number, name, reservation_date, reservation_time, party_size, other_info,"
    " confirmation_number, status, created_at, updated_at"
)
# What a change may touch; the phone number is the booking's identity and never changes.
CHANGEABLE = ("name", "reservation_date", "reservation_time", "party_size", "other_info")

SELECT_BY_PHONE_SQL = (
    f"SELECT {COLUMNS} FROM reservations WHERE phone_number = $1 AND status = 'confirmed'"
)
LOCK_CONFIRMED_SQL = SELECT_BY_PHONE_SQL + " FOR UPDATE"
LOCK_UPCOMING_SQL = (
    f"SELECT {COLUMNS} FROM reservations"
    " WHERE phone_number = $1 AND status = 'confirmed' AND reservation_date >= $2 FOR UPDATE"
)

# Nothing is returned when another confirmed booking for the phone won the race: the caller
# then reads (and locks) that one.
INSERT_SQL = f"""
INSERT INTO reservations
    (phone_number, name, reservation_date, reservation_time, party_size, other_info,
     confirmation_number)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (phone_number) WHERE status = 'confirmed' DO NOTHING
RETURNING {COLUMNS}
"""

# A past booking's row becomes the new booking (the old one lives on in the history).
REPLACE_SQL = f"""
UPDATE reservations SET
    name = $2, reservation_date = $3, reservation_time = $4, party_size = $5, other_info = $6,
    confirmation_number = $7, created_at = now()
WHERE id = $1
RETURNING {COLUMNS}
"""

CHANGE_SQL = f"""
UPDATE reservations SET
    name = $2, reservation_date = $3, reservation_time = $4, party_size = $5, other_info = $6
WHERE id = $1
RETURNING {COLUMNS}
"""

CANCEL_SQL = f"UPDATE reservations SET status = 'cancelled' WHERE id = $1 RETURNING {COLUMNS}"

HISTORY_LOCK_SQL = "SELECT pg_advisory_xact_lock($1)"
RECORD_SQL = f"""
WITH entry AS (
    INSERT INTO reservation_history
        (reservation_id, phone_number, action, source, call_id, before, after)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING seq
)
SELECT seq, pg_notify('{HISTORY_CHANNEL}', seq::text) FROM entry
"""

HISTORY_COLUMNS = "seq, phone_number, action, at, source, call_id, before, after"
HISTORY_BY_PHONE_SQL = (
    f"SELECT {HISTORY_COLUMNS} FROM reservation_history WHERE phone_number = $1 ORDER BY seq"
)
HISTORY_AFTER_SQL = (
    f"SELECT {HISTORY_COLUMNS} FROM reservation_history WHERE seq > $1 ORDER BY seq LIMIT $2"
)
LATEST_SEQ_SQL = "SELECT coalesce(max(seq), 0) FROM reservation_history"


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

SEED_ROWS: list[dict[str, Any]] = [
    {
        "name": "Ada Lovelace",
        "phone_number": "+6591234567",
        "party_size": 2,
        "days": 1,
        "time": "19:00",
        "other_info": {"notes": "window seat"},
    },
    {
        "name": "Alan Turing",
        "phone_number": "+6581234567",
        "party_size": 4,
        "days": 2,
        "time": "20:30",
        "other_info": {},
    },
    {
        "name": "Grace Hopper",
        "phone_number": "+6561234567",
        "party_size": 6,
        "days": 3,
        "time": "12:15",
        "other_info": {"notes": "birthday"},
    },
]


@dataclass(frozen=True)
class Origin:
    """Who made a change, as the history records it: `rest`, `voice` or `staff`, and for voice
    the call's id."""

    source: str = "rest"
    call_id: str | None = None


REST = Origin("rest")


@dataclass(frozen=True)
class Reservation:
    id: int  # the row; internal (a replaced booking keeps its row but not its number)
    phone_number: str
    name: str
    reservation_date: dt.date
    reservation_time: dt.time
    party_size: int
    other_info: dict[str, Any]
    confirmation_number: str
    status: str  # "confirmed" | "cancelled"
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Reservation:
        return cls(**dict(row))

    def to_json(self) -> dict[str, Any]:
        return {
            "phone_number": self.phone_number,
            "name": self.name,
            "reservation_date": self.reservation_date.isoformat(),
            "reservation_time": self.reservation_time.strftime("%H:%M"),
            "party_size": self.party_size,
            "other_info": self.other_info,
            "confirmation_number": self.confirmation_number,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def same_booking(self, request: ReservationRequest) -> bool:
        """A repeat of the same request (a retried call), not a different booking."""
        return (
            self.name.casefold() == request.name.casefold()
            and self.reservation_date == request.reservation_date
            and self.reservation_time == request.reservation_time
            and self.party_size == request.party_size
            and self.other_info == request.other_info
        )


@dataclass(frozen=True)
class BookingResult:
    """`created` is a new booking; `repeated` the existing identical one; `conflict` another."""

    outcome: str  # "created" | "repeated" | "conflict"
    reservation: Reservation


@dataclass(frozen=True)
class ChangeResult:
    """The outcome of a change or a cancellation: `changed`, `unchanged` (nothing to do),
    `cancelled`, `not_found` (no upcoming booking, or the guard refused it), or `stale` (the
    caller's `If-Match` names an older version; `reservation` is the current one)."""

    outcome: str
    reservation: Reservation | None = None
    before: Reservation | None = None


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    phone_number: str
    action: str  # "created" | "changed" | "cancelled" | "replaced"
    at: dt.datetime
    source: str
    call_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "action": self.action,
            "at": self.at.isoformat(),
            "source": self.source,
            "call": self.call_id,
            "phone_number": self.phone_number,
            "before": self.before,
            "after": self.after,
        }


def new_confirmation_number() -> str:
    return "".join(secrets.choice(CONFIRMATION_ALPHABET) for _ in range(CONFIRMATION_LENGTH))


async def _record(
    conn: asyncpg.Connection,
    action: str,
    origin: Origin,
    before: Reservation | None,
    after: Reservation,
) -> int:
    """Append the change's history row in the caller's transaction; returns its seq.

    The advisory lock, held until commit, makes seq numbers follow commit order; writers take it
    last, after their row locks, so it cannot deadlock with them.
    """
    await conn.execute(HISTORY_LOCK_SQL, HISTORY_LOCK_ID)
    row = await conn.fetchrow(
        RECORD_SQL,
        after.id,
        after.phone_number,
        action,
        origin.source,
        origin.call_id,
        before.to_json() if before is not None else None,
        after.to_json(),
    )
    return int(row["seq"])


# --- writes ----------------------------------------------------------------------------------


async def book(
    pool: asyncpg.Pool, request: ReservationRequest, today: dt.date, origin: Origin = REST
) -> BookingResult:
    """Create the booking, or say why not. `request.phone_number` must already be E.164."""
    with outage_as_unavailable():
        for _ in range(5):
            try:
                async with pool.acquire() as conn, conn.transaction():
                    result = await _book(conn, request, today, origin)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "reservations_confirmation_number_key":
                    continue  # one in 887 million per existing row: draw again
                raise
            if result is not None:
                return result
    raise DatabaseUnavailable("could not settle the booking after several attempts")


async def _book(
    conn: asyncpg.Connection, request: ReservationRequest, today: dt.date, origin: Origin
) -> BookingResult | None:
    fields = (
        request.name,
        request.reservation_date,
        request.reservation_time,
        request.party_size,
        request.other_info,
        new_confirmation_number(),
    )
    for _ in range(3):
        held = await conn.fetchrow(LOCK_CONFIRMED_SQL, request.phone_number)
        if held is None:
            row = await conn.fetchrow(INSERT_SQL, request.phone_number, *fields)
            if row is None:
                continue  # another booking for this phone committed first: read that one
            created = Reservation.from_row(row)
            await _record(conn, "created", origin, None, created)
            return BookingResult("created", created)
        existing = Reservation.from_row(held)
        if existing.reservation_date < today:
            replaced = Reservation.from_row(await conn.fetchrow(REPLACE_SQL, existing.id, *fields))
            await _record(conn, "replaced", origin, existing, replaced)
            return BookingResult("created", replaced)
        outcome = "repeated" if existing.same_booking(request) else "conflict"
        return BookingResult(outcome, existing)
    return None  # the phone's booking kept changing under us: the caller tries again


Guard = Callable[[Reservation], bool]


Changes = Mapping[str, Any] | Callable[[Reservation], Mapping[str, Any]]


async def change(
    pool: asyncpg.Pool,
    phone_number: str,
    changes: Changes,
    today: dt.date,
    origin: Origin = REST,
    guard: Guard | None = None,
    if_match: str | None = None,
) -> ChangeResult:
    """Apply `changes` (fields of `CHANGEABLE`, already validated) to the phone's upcoming
    booking; a function of the locked booking may compute them (to merge into `other_info`).
    `guard` sees the locked booking first; False reads as "not found" (the voice tools' name
    check, judged on the same row that is then changed). `if_match` (an If-Match header) is
    compared with the locked row's ETag, so no write can slip in between check and change."""
    with outage_as_unavailable():
        async with pool.acquire() as conn, conn.transaction():
            held = await conn.fetchrow(LOCK_UPCOMING_SQL, phone_number, today)
            if held is None:
                return ChangeResult("not_found")
            before = Reservation.from_row(held)
            if guard is not None and not guard(before):
                return ChangeResult("not_found")
            if not if_match_allows(if_match, etag_of(before.to_json())):
                return ChangeResult("stale", before, before)
            if callable(changes):
                changes = changes(before)
            unknown = set(changes) - set(CHANGEABLE)
            if unknown:
                raise ValueError(f"not changeable: {sorted(unknown)}")
            merged = [changes.get(name, getattr(before, name)) for name in CHANGEABLE]
            if merged == [getattr(before, name) for name in CHANGEABLE]:
                return ChangeResult("unchanged", before, before)
            after = Reservation.from_row(await conn.fetchrow(CHANGE_SQL, before.id, *merged))
            await _record(conn, "changed", origin, before, after)
            return ChangeResult("changed", after, before)


async def cancel(
    pool: asyncpg.Pool,
    phone_number: str,
    today: dt.date,
    origin: Origin = REST,
    guard: Guard | None = None,
    if_match: str | None = None,
) -> ChangeResult:
    """Cancel the phone's upcoming booking; the row stays, with status `cancelled`.
    `if_match` as for `change`."""
    with outage_as_unavailable():
        async with pool.acquire() as conn, conn.transaction():
            held = await conn.fetchrow(LOCK_UPCOMING_SQL, phone_number, today)
            if held is None:
                return ChangeResult("not_found")
            before = Reservation.from_row(held)
            if guard is not None and not guard(before):
                return ChangeResult("not_found")
            if not if_match_allows(if_match, etag_of(before.to_json())):
                return ChangeResult("stale", before, before)
            after = Reservation.from_row(await conn.fetchrow(CANCEL_SQL, before.id))
            await _record(conn, "cancelled", origin, before, after)
            return ChangeResult("cancelled", after, before)


# --- reads -----------------------------------------------------------------------------------


async def find(pool: asyncpg.Pool, phone_number: str) -> Reservation | None:
    """The confirmed reservation held by an E.164 phone number, if any."""
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


def _entry(row: asyncpg.Record) -> HistoryEntry:
    return HistoryEntry(**dict(row))


async def history(pool: asyncpg.Pool, phone_number: str) -> list[HistoryEntry]:
    """Everything that ever happened to the phone's bookings, oldest first."""
    with outage_as_unavailable():
        rows = await pool.fetch(HISTORY_BY_PHONE_SQL, phone_number)
    return [_entry(row) for row in rows]


async def changes_after(pool: asyncpg.Pool, seq: int, limit: int = 500) -> list[HistoryEntry]:
    """History rows after `seq`, in order: what a live feed missed."""
    with outage_as_unavailable():
        rows = await pool.fetch(HISTORY_AFTER_SQL, seq, limit)
    return [_entry(row) for row in rows]


async def latest_seq(pool: asyncpg.Pool) -> int:
    """The newest history row's seq (0 when there is none): where a fresh feed starts."""
    with outage_as_unavailable():
        return int(await pool.fetchval(LATEST_SEQ_SQL))


async def ping(pool: asyncpg.Pool) -> None:
    """Raise `DatabaseUnavailable` unless the database answers."""
    with outage_as_unavailable():
        await pool.fetchval("SELECT 1")


async def seed(pool: asyncpg.Pool, today: dt.date) -> list[BookingResult]:
    """A few sample bookings for demos, dated from `today`; safe to run twice."""
    results = []
    for sample in SEED_ROWS:
        request = ReservationRequest(
            name=sample["name"],
            phone_number=sample["phone_number"],
            reservation_date=today + dt.timedelta(days=sample["days"]),
            reservation_time=dt.time.fromisoformat(sample["time"]),
            party_size=sample["party_size"],
            other_info=sample["other_info"],
        )
        results.append(await book(pool, request, today, Origin("staff")))
    return results
