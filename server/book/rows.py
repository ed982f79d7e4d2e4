"""What the book's SQL answers, as Python: a reservation row, who acted, and the outcomes of a
write. Shared by the writers (`reservations`), the readers (`listing`) and the seating rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from server.book.availability import Decision
from server.book.models import ReservationRequest

# The tables a booking holds ride along with every row read or returned (NULL: none).
COLUMNS = (
    "id, phone_number, name, reservation_date, reservation_time, party_size, other_info,"
    " confirmation_number, status, created_at, updated_at,"
    " (SELECT array_agg(h.table_name ORDER BY h.table_name) FROM table_holds h"
    " WHERE h.reservation_id = reservations.id) AS tables"
)
# A phone's upcoming booking or request: at most one (a partial unique index).
HELD = "status IN ('confirmed', 'requested')"


@dataclass(frozen=True)
class Origin:
    """Who made a change, as the history records it: `rest`, `voice`, `staff` or `guest` (the
    manage page), for voice the call's id, and whether staff booked past the availability
    rules (`override`)."""

    source: str = "rest"
    call_id: str | None = None
    override: bool = False


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
    status: str  # "confirmed" | "requested" | "cancelled"
    created_at: dt.datetime
    updated_at: dt.datetime
    tables: list[str] | None = None  # the table(s) held, with a table plan

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
            "tables": self.tables,
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
    """`created` is a new booking (or request: see its status); `repeated` the existing
    identical one; `conflict` another."""

    outcome: str  # "created" | "repeated" | "conflict"
    reservation: Reservation


@dataclass(frozen=True)
class ChangeResult:
    """The outcome of a change or a cancellation: `changed`, `unchanged` (nothing to do),
    `cancelled`, `confirmed` (a request), or `not_found` (no upcoming booking, or the guard
    refused it)."""

    outcome: str
    reservation: Reservation | None = None
    before: Reservation | None = None


class SlotUnavailable(Exception):
    """The availability rules refuse the booking or the change: why, and what would do."""

    def __init__(self, decision: Decision):
        super().__init__(decision.reason or "unavailable")
        self.decision = decision
