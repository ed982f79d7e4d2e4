"""The availability engine: (profile, existing bookings, request, now) -> yes or no, why, and the
nearest times that would do. Pure: no I/O, no clock of its own, so every rule is unit-tested
without a database, and the writers run the very same decision inside their transaction.

Times are the restaurant's wall clock (`reservation_date`, `reservation_time`); lead times and
table occupancy are judged on real instants in the profile's timezone, so a booking across a DST
change or past midnight holds its table for exactly its dining time.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from server.book.restaurant import RestaurantProfile

# Reasons, in the order they are judged: the first that applies is the answer.
IN_THE_PAST = "in_the_past"
TOO_FAR = "too_far"
CLOSED = "closed"
OUTSIDE_HOURS = "outside_hours"
TOO_SOON = "too_soon"
PARTY_TOO_LARGE = "party_too_large"
FULL = "full"
REASONS = (IN_THE_PAST, TOO_FAR, CLOSED, OUTSIDE_HOURS, TOO_SOON, PARTY_TOO_LARGE, FULL)

ALTERNATIVES = 3
SEARCH_DAYS = 21  # alternatives are looked for on the request's day and this many days after


@dataclass(frozen=True)
class Booking:
    """What the engine needs of a booking already in the book (confirmed or requested)."""

    id: int
    day: dt.date
    time: dt.time
    party_size: int
    status: str = "confirmed"
    tables: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Request:
    day: dt.date
    time: dt.time
    party_size: int


@dataclass(frozen=True)
class Alternative:
    day: dt.date
    time: dt.time

    def to_json(self) -> dict[str, str]:
        return {"date": self.day.isoformat(), "time": self.time.strftime("%H:%M")}


@dataclass(frozen=True)
class Decision:
    """`available`: book it (at `tables`, None without a plan). `request`: a party over the
    limit on an otherwise bookable day, which becomes a request for staff."""

    available: bool
    reason: str | None = None
    tables: tuple[str, ...] | None = None
    alternatives: list[Alternative] = field(default_factory=list)

    @property
    def request(self) -> bool:
        return self.reason == PARTY_TOO_LARGE

    def to_json(self) -> dict[str, object]:
        return {
            "available": self.available,
            "reason": self.reason,
            "alternatives": [a.to_json() for a in self.alternatives],
        }


def instant(profile: RestaurantProfile, day: dt.date, time: dt.time) -> dt.datetime:
    """A wall-clock time at the restaurant as a real instant, in UTC: aware datetimes that share
    a tzinfo subtract and compare by wall clock, which is wrong across a DST change."""
    return dt.datetime.combine(day, time, tzinfo=profile.zone).astimezone(dt.UTC)


def hold_span(
    profile: RestaurantProfile, day: dt.date, time: dt.time, party_size: int
) -> tuple[dt.datetime, dt.datetime]:
    """From arrival to the end of the dining time: the span a booking holds its table(s)."""
    start = instant(profile, day, time)
    return start, start + profile.dining(party_size)


def slot_of(profile: RestaurantProfile, time: dt.time) -> int:
    """The slot (minutes after midnight, on the grid) a time falls in."""
    minutes = time.hour * 60 + time.minute
    return minutes - minutes % profile.slot_minutes


def day_grid(profile: RestaurantProfile) -> list[dt.time]:
    """Every slot of a day."""
    step = profile.slot_minutes
    return [dt.time(m // 60, m % 60) for m in range(0, 24 * 60, step)]


def arrival_slots(profile: RestaurantProfile, day: dt.date) -> list[dt.time]:
    """The arrival times of `day`'s hours on the grid, both ends included (none when closed)."""
    if profile.closure(day) is not None:
        return []
    step = profile.slot_minutes
    minutes = {
        m
        for start, end in profile.windows(day)
        for m in range(start.hour * 60 + start.minute, end.hour * 60 + end.minute + 1, step)
    }
    return [dt.time(m // 60, m % 60) for m in sorted(minutes)]


class Book:
    """The existing bookings, indexed for the questions the engine asks (and each day's arrival
    slots, worked out once per decision)."""

    def __init__(
        self, profile: RestaurantProfile, bookings: Iterable[Booking], exclude: int | None
    ):
        self.profile = profile
        self.covers: dict[tuple[dt.date, int], int] = defaultdict(int)
        self.held: dict[str, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
        self._slots: dict[dt.date, list[dt.time]] = {}
        for booking in bookings:
            if booking.id == exclude or booking.status not in ("confirmed", "requested"):
                continue
            if booking.status == "confirmed":
                self.covers[(booking.day, slot_of(profile, booking.time))] += booking.party_size
            if booking.tables:
                span = hold_span(profile, booking.day, booking.time, booking.party_size)
                for table in booking.tables:
                    self.held[table].append(span)

    def slots(self, day: dt.date) -> list[dt.time]:
        if day not in self._slots:
            self._slots[day] = arrival_slots(self.profile, day)
        return self._slots[day]

    def free(self, table: str, span: tuple[dt.datetime, dt.datetime]) -> bool:
        start, end = span
        return all(end <= s or e <= start for s, e in self.held.get(table, ()))


def _candidates(profile: RestaurantProfile, party_size: int) -> list[tuple[str, ...]]:
    """Tables, then listed combinations, that fit the party: fewest seats first (a single table
    before a combination of as many seats, then in the order listed)."""
    seats = {t.name: t.seats for t in profile.tables}
    fits: list[tuple[int, int, int, tuple[str, ...]]] = []
    for order, table in enumerate(profile.tables):
        if table.min_party <= party_size <= table.seats:
            fits.append((table.seats, 0, order, (table.name,)))
    for order, combo in enumerate(profile.combinations):
        total = sum(seats[name] for name in combo)
        if party_size <= total:
            fits.append((total, 1, order, tuple(combo)))
    return [names for *_, names in sorted(fits)]


def _judge(
    profile: RestaurantProfile,
    book: Book,
    request: Request,
    now: dt.datetime,
    *,
    party_limit: bool = True,
) -> tuple[str | None, tuple[str, ...] | None]:
    """The first reason that refuses the request (None: it fits) and the tables it would hold."""
    local_now = now.astimezone(profile.zone)
    arrival = instant(profile, request.day, request.time)
    if arrival < now:
        return IN_THE_PAST, None
    if (request.day - local_now.date()).days > profile.max_days_ahead:
        return TOO_FAR, None
    slots = book.slots(request.day)
    if not slots:
        return CLOSED, None
    if request.time not in slots:
        return OUTSIDE_HOURS, None
    if arrival - now.astimezone(dt.UTC) < dt.timedelta(minutes=profile.min_lead_minutes):
        return TOO_SOON, None
    if party_limit and request.party_size > profile.max_party_size:
        return PARTY_TOO_LARGE, None
    candidates = _candidates(profile, request.party_size) if profile.tables else []
    if profile.tables and not candidates:
        return PARTY_TOO_LARGE, None  # no table or combination seats them, even empty
    if profile.covers_per_slot is not None:
        taken = book.covers[(request.day, slot_of(profile, request.time))]
        if taken + request.party_size > profile.covers_per_slot:
            return FULL, None
    if not profile.tables:
        return None, None
    tables = _free_fit(profile, book, request, candidates)
    return (None, tables) if tables is not None else (FULL, None)


def _free_fit(
    profile: RestaurantProfile, book: Book, request: Request, candidates: list[tuple[str, ...]]
) -> tuple[str, ...] | None:
    span = hold_span(profile, request.day, request.time, request.party_size)
    return next((names for names in candidates if all(book.free(n, span) for n in names)), None)


def seat(
    profile: RestaurantProfile,
    bookings: Iterable[Booking],
    request: Request,
    *,
    exclude: int | None = None,
) -> tuple[str, ...] | None:
    """The smallest free table or combination for the party, judging nothing else (staff
    confirming a request or booking past the rules); None without a plan or a free fit."""
    if not profile.tables:
        return None
    book = Book(profile, bookings, exclude)
    return _free_fit(profile, book, request, _candidates(profile, request.party_size))


def decide(
    profile: RestaurantProfile,
    bookings: Iterable[Booking],
    request: Request,
    now: dt.datetime,
    *,
    exclude: int | None = None,
    party_limit: bool = True,
    alternatives: int = ALTERNATIVES,
) -> Decision:
    """May `request` be booked? With `always` the answer is yes (nothing is enforced).

    `exclude` leaves one booking out of the book (a change re-checks its own booking as if it
    were gone); `party_limit` False skips `max_party_size` (a request that stays a request).
    """
    if not profile.rules:
        return Decision(True)
    book = Book(profile, bookings, exclude)
    reason, tables = _judge(profile, book, request, now, party_limit=party_limit)
    if reason is None:
        return Decision(True, None, tables)
    found = [] if reason == PARTY_TOO_LARGE else _nearest(profile, book, request, now, alternatives)
    return Decision(False, reason, None, found)


def _nearest(
    profile: RestaurantProfile, book: Book, request: Request, now: dt.datetime, limit: int
) -> list[Alternative]:
    """Up to `limit` available times: the request's day first (nearest to the asked time), then
    the next open days, each nearest to the asked time."""
    if limit <= 0:
        return []
    local_today = now.astimezone(profile.zone).date()
    first = max(request.day, local_today)
    asked = request.time.hour * 60 + request.time.minute
    found: list[Alternative] = []
    for offset in range(SEARCH_DAYS + 1):
        day = first + dt.timedelta(days=offset)
        slots = sorted(
            book.slots(day),
            key=lambda t: (abs(t.hour * 60 + t.minute - asked), t),
        )
        for time in slots:
            if day == request.day and time == request.time:
                continue
            probe = Request(day, time, request.party_size)
            if _judge(profile, book, probe, now)[0] is None:
                found.append(Alternative(day, time))
                if len(found) == limit:
                    return found
    return found


@dataclass(frozen=True)
class SlotState:
    time: dt.time
    available: bool
    reason: str | None

    def to_json(self) -> dict[str, object]:
        return {
            "time": self.time.strftime("%H:%M"),
            "available": self.available,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DayState:
    open: bool
    reason: str | None  # why the day is not open: closed (or the closure's own words)
    slots: list[SlotState]


def day_availability(
    profile: RestaurantProfile,
    bookings: Iterable[Booking],
    day: dt.date,
    party_size: int,
    now: dt.datetime,
) -> DayState:
    """Every slot a party could arrive in on `day`, each with its answer.

    `rules`: the arrival slots of the day's hours. `always`: every slot of the day on the grid,
    available unless it is in the past.
    """
    if not profile.rules:
        states = [
            SlotState(
                t, *((False, IN_THE_PAST) if instant(profile, day, t) < now else (True, None))
            )
            for t in day_grid(profile)
        ]
        return DayState(True, None, states)
    book = Book(profile, bookings, None)
    slots = arrival_slots(profile, day)
    if not slots:
        return DayState(False, CLOSED, [])
    states = []
    for time in slots:
        reason, _ = _judge(profile, book, Request(day, time, party_size), now)
        states.append(SlotState(time, reason is None, reason))
    return DayState(True, None, states)


def open_on(profile: RestaurantProfile, day: dt.date) -> bool:
    return bool(arrival_slots(profile, day))


def conflicts(
    profile: RestaurantProfile, bookings: Sequence[Booking], now: dt.datetime
) -> list[tuple[Booking, str]]:
    """The bookings the current rules would refuse, each with its reason: replayed in the order
    they were made (by id), so `full` names the ones past the limit, not the first ones in.
    Lead times and the past do not count: those bookings were made when they were allowed."""
    if not profile.rules:
        return []
    found: list[tuple[Booking, str]] = []
    covers: dict[tuple[dt.date, int], int] = defaultdict(int)
    for booking in sorted(bookings, key=lambda b: b.id):
        slots = arrival_slots(profile, booking.day)
        reason: str | None = None
        if not slots:
            reason = CLOSED
        elif booking.time not in slots:
            reason = OUTSIDE_HOURS
        elif booking.status == "confirmed" and booking.party_size > profile.max_party_size:
            reason = PARTY_TOO_LARGE
        elif booking.status == "confirmed" and profile.covers_per_slot is not None:
            taken = covers[(booking.day, slot_of(profile, booking.time))]
            if taken + booking.party_size > profile.covers_per_slot:
                reason = FULL
        if reason is None:
            if booking.status == "confirmed":
                covers[(booking.day, slot_of(profile, booking.time))] += booking.party_size
        else:
            found.append((booking, reason))
    return found
