"""Reading the bookings' history: one phone's, every row after a point (the live feed), the
newest. Writing it is `reservations._record`, in each write's own transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from server.book.db_errors import outage_as_unavailable

HISTORY_COLUMNS = "seq, phone_number, action, at, source, call_id, before, after, override"
HISTORY_BY_PHONE_SQL = (
    f"SELECT {HISTORY_COLUMNS} FROM reservation_history WHERE phone_number = $1 ORDER BY seq"
)
HISTORY_AFTER_SQL = (
    f"SELECT {HISTORY_COLUMNS} FROM reservation_history WHERE seq > $1 ORDER BY seq LIMIT $2"
)
LATEST_SEQ_SQL = "SELECT coalesce(max(seq), 0) FROM reservation_history"


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    phone_number: str
    action: str  # "created" | "changed" | "cancelled" | "replaced" | "confirmed" | "declined"
    at: dt.datetime
    source: str
    call_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    override: bool = False  # staff booked past the availability rules

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
            "override": self.override,
        }


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
