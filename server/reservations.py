"""Every SQL statement of the product, and the booking rules that need the database.

REST handlers and the model's tools both call `book` and `find`, so the two front doors cannot
disagree. Rules enforced by PostgreSQL itself rather than by check-then-insert:

- one row per phone number (primary key): concurrent bookings from any number of processes end
  with exactly one row;
- a booking whose date has passed is replaced by the same single `INSERT ... ON CONFLICT` that
  refuses to touch an upcoming one;
- confirmation numbers are unique (a collision is retried with a fresh number).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from server.models import ReservationRequest

# Voice-friendly: no 0/O, 1/I/L that a caller would confuse when it is read out.
CONFIRMATION_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CONFIRMATION_LENGTH = 6

COLUMNS = (
    "phone_number, name, reservation_date, reservation_time, party_size, other_info,"
    " confirmation_number, created_at, updated_at"
)

# Insert, or replace a booking whose date has passed; an upcoming booking is left untouched and
# nothing is returned, which the caller then reads back to tell a repeat from a conflict.
UPSERT_SQL = f"""
INSERT INTO reservations
    (phone_number, name, reservation_date, reservation_time, party_size, other_info,
     confirmation_number)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (phone_number) DO UPDATE SET
    name = EXCLUDED.name,
    reservation_date = EXCLUDED.reservation_date,
    reservation_time = EXCLUDED.reservation_time,
    party_size = EXCLUDED.party_size,
    other_info = EXCLUDED.other_info,
    confirmation_number = EXCLUDED.confirmation_number,
    created_at = now()
WHERE reservations.reservation_date < $8
RETURNING {COLUMNS}
"""

SELECT_BY_PHONE_SQL = f"SELECT {COLUMNS} FROM reservations WHERE phone_number = $1"

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


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached or did not answer in time; the caller may retry later."""


# What asyncpg raises when the server is gone, restarting or too slow. Not constraint errors:
# those are bugs or rule violations and must not look like an outage.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # includes a connection closed under us
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # shutdown, restart, statement cancelled
    asyncpg.TooManyConnectionsError,
)


@dataclass(frozen=True)
class Reservation:
    phone_number: str
    name: str
    reservation_date: dt.date
    reservation_time: dt.time
    party_size: int
    other_info: dict[str, Any]
    confirmation_number: str
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
    """`created` is a new row; `repeated` the existing identical one; `conflict` someone else's."""

    outcome: str  # "created" | "repeated" | "conflict"
    reservation: Reservation


def new_confirmation_number() -> str:
    return "".join(secrets.choice(CONFIRMATION_ALPHABET) for _ in range(CONFIRMATION_LENGTH))


async def book(pool: asyncpg.Pool, request: ReservationRequest, today: dt.date) -> BookingResult:
    """Create the booking, or say why not. `request.phone_number` must already be E.164."""
    try:
        for _ in range(5):
            try:
                row = await pool.fetchrow(
                    UPSERT_SQL,
                    request.phone_number,
                    request.name,
                    request.reservation_date,
                    request.reservation_time,
                    request.party_size,
                    request.other_info,
                    new_confirmation_number(),
                    today,
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "reservations_confirmation_number_key":
                    continue  # one in 887 million per existing row: draw again
                raise
            if row is not None:
                return BookingResult("created", Reservation.from_row(row))
            existing = await pool.fetchrow(SELECT_BY_PHONE_SQL, request.phone_number)
            if existing is None:
                continue  # deleted between the two statements: try the insert again
            reservation = Reservation.from_row(existing)
            outcome = "repeated" if reservation.same_booking(request) else "conflict"
            return BookingResult(outcome, reservation)
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
    raise DatabaseUnavailable("could not settle the booking after several attempts")


async def find(pool: asyncpg.Pool, phone_number: str) -> Reservation | None:
    """The reservation held by an E.164 phone number, if any."""
    try:
        row = await pool.fetchrow(SELECT_BY_PHONE_SQL, phone_number)
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
    return Reservation.from_row(row) if row is not None else None


async def ping(pool: asyncpg.Pool) -> None:
    """Raise `DatabaseUnavailable` unless the database answers."""
    try:
        await pool.fetchval("SELECT 1")
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc


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
        results.append(await book(pool, request, today))
    return results
