"""Every write to the book, and the booking rules that need the database.

REST handlers, the staff book and the model's tools all call these functions, so the front doors
cannot disagree. Rules enforced by PostgreSQL itself rather than by check-then-insert:

- one upcoming booking (or request) per phone number (a partial unique index): concurrent
  bookings from any number of processes end with exactly one;
- a booking whose date has passed is replaced, an upcoming one never is;
- confirmation numbers are unique (a collision is retried with a fresh number);
- every write locks the row it starts from (`FOR UPDATE`), so a change, a cancellation and a
  booking for one phone at once, from any processes, are applied one after the other: no lost
  update;
- with `availability: rules`, a booking (or a change of date, time or party) takes its date's
  lock and is re-checked by the engine inside the transaction that writes it (`seating`), so
  covers are never overbooked; the tables it holds are rows that an exclusion constraint keeps
  from overlapping;
- every write appends its history row in the same transaction (see `_record`), and that row's
  NOTIFY reaches every process's live feed when the transaction commits.

Each function runs inside `outage_as_unavailable()`: a database that went away is
`DatabaseUnavailable`, whatever asyncpg raised. Reads live in `listing` and `history`, re-exported
here so callers keep one module to import.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from server.book import availability as av
from server.book import outbox, seating
from server.book.db_errors import DatabaseUnavailable, outage_as_unavailable
from server.book.etag import etag_of, if_match_allows
from server.book.history import HistoryEntry, changes_after, history, latest_seq
from server.book.listing import (
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    find,
    find_by_id,
    list_reservations,
    ping,
)
from server.book.models import ReservationRequest
from server.book.restaurant import RestaurantProfile
from server.book.rows import (
    REST,
    BookingResult,
    ChangeResult,
    Origin,
    Reservation,
    SlotUnavailable,
)
from server.book.samples import SEED_ROWS
from server.book.write_sql import (
    CANCEL_SQL,
    CHANGE_SQL,
    CONFIRM_SQL,
    HISTORY_CHANNEL,
    HISTORY_LOCK_SQL,
    INSERT_SQL,
    LOCK_HELD_SQL,
    LOCK_UPCOMING_SQL,
    RECORD_SQL,
    REPLACE_SQL,
)

__all__ = [  # re-exported: REST, the tools and the live feed import them from here
    "HISTORY_CHANNEL",
    "REST",
    "SEED_ROWS",
    "BookingResult",
    "ChangeResult",
    "DatabaseUnavailable",
    "HistoryEntry",
    "InvalidCursor",
    "Origin",
    "Reservation",
    "SlotUnavailable",
    "changes_after",
    "decode_cursor",
    "encode_cursor",
    "find",
    "find_by_id",
    "history",
    "latest_seq",
    "list_reservations",
    "ping",
]

# Voice-friendly: no 0/O, 1/I/L that a caller would confuse when it is read out.
CONFIRMATION_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CONFIRMATION_LENGTH = 6

# Held from a history row's insert to its commit, so seq numbers follow commit order: a reader
# that has seen seq N can never later meet a row < N committed after it. Any constant works.
HISTORY_LOCK_ID = 7_321_004_118

# What a change may touch; the phone number is the booking's identity and never changes.
CHANGEABLE = ("name", "reservation_date", "reservation_time", "party_size", "other_info")
# What the availability rules judge: a change of only these is re-checked.
JUDGED = ("reservation_date", "reservation_time", "party_size")

ATTEMPTS = 5


def new_confirmation_number() -> str:
    return "".join(secrets.choice(CONFIRMATION_ALPHABET) for _ in range(CONFIRMATION_LENGTH))


async def _record(
    conn: asyncpg.Connection,
    action: str,
    origin: Origin,
    before: Reservation | None,
    after: Reservation,
) -> int:
    """Append the change's history row in the caller's transaction, and the outbox rows of the
    guest's texts with it (`server.book.outbox`); returns its seq.

    The advisory lock, held until commit, makes seq numbers follow commit order; writers take it
    last, after their row locks, so it cannot deadlock with them.
    """
    await conn.execute(HISTORY_LOCK_SQL, HISTORY_LOCK_ID)
    kind = outbox.kind_of(action, after.status)
    row = await conn.fetchrow(
        RECORD_SQL,
        after.id,
        after.phone_number,
        action,
        origin.source,
        origin.call_id,
        before.to_json() if before is not None else None,
        after.to_json(),
        origin.override,
        kind,
    )
    return int(row["seq"])


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


async def _admit(
    conn: asyncpg.Connection,
    slot: av.Request,
    now: dt.datetime,
    origin: Origin,
    *,
    exclude: int | None = None,
    requested: bool = False,
) -> tuple[str, tuple[str, ...] | None, RestaurantProfile]:
    """The status and tables a booking (or a booking's new slot) gets, under the date's lock;
    raises `SlotUnavailable` when the rules refuse it. Under `always` nothing is judged.

    `requested`: the booking is already a request (it stays one: its size is staff's call).
    """
    profile = await seating.rules(conn)
    if not profile.rules:
        return ("requested" if requested else "confirmed"), None, profile
    far = seating.out_of_reach(profile, slot.day, now)
    if far is not None:  # no table is held that far off, not even by staff's word
        if origin.override:
            return ("requested" if requested else "confirmed"), None, profile
        raise SlotUnavailable(far)
    bookings = await seating.lock_day(conn, slot.day)
    if origin.override:  # staff, past every limit: seated if a table is free
        status = "requested" if requested else "confirmed"
        tables = None if requested else av.seat(profile, bookings, slot, exclude=exclude)
        return status, tables, profile
    decision = await seating.judge(
        conn, profile, bookings, slot, now, exclude=exclude, party_limit=not requested
    )
    if decision.available:
        return (
            ("requested", None, profile) if requested else ("confirmed", decision.tables, profile)
        )
    if decision.request:
        return "requested", None, profile
    raise SlotUnavailable(decision)


async def _retrying(attempt: Callable[[], Any]) -> Any:
    """Run a write's transaction, again on the rare clashes PostgreSQL settles for us: a drawn
    confirmation number already taken, or a table taken by a booking of the neighbouring date
    (the exclusion constraint; the retry sees it committed and judges again)."""
    with outage_as_unavailable():
        for _ in range(ATTEMPTS):
            try:
                result = await attempt()
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "reservations_confirmation_number_key":
                    continue  # one in 887 million per existing row: draw again
                raise
            except asyncpg.ExclusionViolationError:
                continue
            if result is not None:
                return result
    raise DatabaseUnavailable("could not settle the booking after several attempts")


# --- book ------------------------------------------------------------------------------------


async def book(
    pool: asyncpg.Pool,
    request: ReservationRequest,
    today: dt.date,
    origin: Origin = REST,
    *,
    now: dt.datetime | None = None,
) -> BookingResult:
    """Create the booking (a request, for a party over the profile's limit), or say why not:
    `SlotUnavailable` when the availability rules refuse it. `request.phone_number` must
    already be E.164."""

    async def attempt() -> BookingResult | None:
        async with pool.acquire() as conn, conn.transaction():
            return await _book(conn, request, today, origin, _now(now))

    result: BookingResult = await _retrying(attempt)
    return result


async def _book(
    conn: asyncpg.Connection,
    request: ReservationRequest,
    today: dt.date,
    origin: Origin,
    now: dt.datetime,
) -> BookingResult | None:
    fields = (
        request.name,
        request.reservation_date,
        request.reservation_time,
        request.party_size,
        request.other_info,
        new_confirmation_number(),
    )
    slot = av.Request(request.reservation_date, request.reservation_time, request.party_size)
    for _ in range(3):
        held = await conn.fetchrow(LOCK_HELD_SQL, request.phone_number)
        existing = Reservation.from_row(held) if held is not None else None
        if existing is not None and existing.reservation_date >= today:
            outcome = "repeated" if existing.same_booking(request) else "conflict"
            return BookingResult(outcome, existing)
        status, tables, profile = await _admit(
            conn, slot, now, origin, exclude=existing.id if existing else None
        )
        if existing is None:
            row = await conn.fetchrow(INSERT_SQL, request.phone_number, *fields, status)
            if row is None:
                continue  # another booking for this phone committed first: read that one
            created = await seating.hold(conn, profile, Reservation.from_row(row), tables)
            await _record(conn, "created", origin, None, created)
            return BookingResult("created", created)
        row = await conn.fetchrow(REPLACE_SQL, existing.id, *fields, status)
        replaced = await seating.hold(conn, profile, Reservation.from_row(row), tables)
        await _record(conn, "replaced", origin, existing, replaced)
        return BookingResult("created", replaced)
    return None  # the phone's booking kept changing under us: the caller tries again


# --- change, cancel, confirm -----------------------------------------------------------------

Guard = Callable[[Reservation], bool]


Changes = Mapping[str, Any] | Callable[[Reservation], Mapping[str, Any]]


async def change(
    pool: asyncpg.Pool,
    phone_number: str,
    changes: Changes,
    today: dt.date,
    origin: Origin = REST,
    guard: Guard | None = None,
    *,
    now: dt.datetime | None = None,
    if_match: str | None = None,
) -> ChangeResult:
    """Apply `changes` (fields of `CHANGEABLE`, already validated) to the phone's upcoming
    booking; a function of the locked booking may compute them (to merge into `other_info`).
    `guard` sees the locked booking first; False reads as "not found" (the voice tools' name
    check, judged on the same row that is then changed). A new date, time or party size is
    judged by the availability rules (`SlotUnavailable`); other fields never are, so a booking
    that new rules would refuse can still get its name or notes corrected. `if_match` (an
    If-Match header) is compared with the locked row's ETag: `stale` when it names another
    version, so no write slips in between the check and the change."""

    async def attempt() -> ChangeResult:
        async with pool.acquire() as conn, conn.transaction():
            return await _change(
                conn, phone_number, changes, today, origin, guard, _now(now), if_match
            )

    result: ChangeResult = await _retrying(attempt)
    return result


async def _change(
    conn: asyncpg.Connection,
    phone_number: str,
    changes: Changes,
    today: dt.date,
    origin: Origin,
    guard: Guard | None,
    now: dt.datetime,
    if_match: str | None,
) -> ChangeResult:
    before = await _lock_upcoming(conn, phone_number, today, guard, if_match)
    if isinstance(before, ChangeResult):
        return before
    if callable(changes):
        changes = changes(before)
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    merged = [changes.get(name, getattr(before, name)) for name in CHANGEABLE]
    if merged == [getattr(before, name) for name in CHANGEABLE]:
        return ChangeResult("unchanged", before, before)
    moved = any(
        changes.get(name, getattr(before, name)) != getattr(before, name) for name in JUDGED
    )
    after = Reservation.from_row(await conn.fetchrow(CHANGE_SQL, before.id, *merged))
    if moved:
        slot = av.Request(after.reservation_date, after.reservation_time, after.party_size)
        requested = before.status == "requested"
        status, tables, profile = await _admit(
            conn, slot, now, origin, exclude=before.id, requested=requested
        )
        if status != before.status:  # a booking grown past max_party_size: not by a change
            raise SlotUnavailable(av.Decision(False, av.PARTY_TOO_LARGE))
        after = await seating.hold(conn, profile, after, tables)
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
    """Cancel the phone's upcoming booking (a request is declined); the row stays, with status
    `cancelled`, and its tables are free again. `if_match` as for `change`."""
    with outage_as_unavailable():
        async with pool.acquire() as conn, conn.transaction():
            before = await _lock_upcoming(conn, phone_number, today, guard, if_match)
            if isinstance(before, ChangeResult):
                return before
            after = Reservation.from_row(await conn.fetchrow(CANCEL_SQL, before.id))
            after = await seating.release(conn, after)
            action = "declined" if before.status == "requested" else "cancelled"
            await _record(conn, action, origin, before, after)
            return ChangeResult("cancelled", after, before)


async def confirm(
    pool: asyncpg.Pool,
    phone_number: str,
    today: dt.date,
    origin: Origin = REST,
    if_match: str | None = None,
) -> ChangeResult:
    """Staff confirm the phone's request: it becomes a booking, seated at the smallest free
    table or combination when there is a plan (staff's word, so no other rule is judged).
    Confirming a confirmed booking is `unchanged`. `if_match` as for `change`."""

    async def attempt() -> ChangeResult:
        async with pool.acquire() as conn, conn.transaction():
            before = await _lock_upcoming(conn, phone_number, today, None, if_match)
            if isinstance(before, ChangeResult):
                return before
            if before.status == "confirmed":
                return ChangeResult("unchanged", before, before)
            slot = av.Request(before.reservation_date, before.reservation_time, before.party_size)
            profile = await seating.rules(conn)
            bookings = await seating.lock_day(conn, slot.day)
            tables = av.seat(profile, bookings, slot, exclude=before.id)
            after = Reservation.from_row(await conn.fetchrow(CONFIRM_SQL, before.id))
            after = await seating.hold(conn, profile, after, tables)
            await _record(conn, "confirmed", origin, before, after)
            return ChangeResult("confirmed", after, before)

    result: ChangeResult = await _retrying(attempt)
    return result


async def _lock_upcoming(
    conn: asyncpg.Connection,
    phone_number: str,
    today: dt.date,
    guard: Guard | None,
    if_match: str | None,
) -> Reservation | ChangeResult:
    """The phone's upcoming booking, row-locked for this transaction; or why there is none to
    act on: `not_found` (none, or the guard refuses it) or `stale` (If-Match names another
    version). One place for the first step of every change, cancel and confirm."""
    held = await conn.fetchrow(LOCK_UPCOMING_SQL, phone_number, today)
    if held is None:
        return ChangeResult("not_found")
    before = Reservation.from_row(held)
    if guard is not None and not guard(before):
        return ChangeResult("not_found")
    if _stale(before, if_match):
        return ChangeResult("stale", before, before)
    return before


def _stale(held: Reservation, if_match: str | None) -> bool:
    """The caller's If-Match names another version than the locked row (see `etag`)."""
    return not if_match_allows(if_match, etag_of(held.to_json()))


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
        results.append(await book(pool, request, today, Origin("staff", override=True)))
    return results
