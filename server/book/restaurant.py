"""The restaurant's profile: one row in PostgreSQL, its shape, and what a caller may see of it.

The profile says whether the availability engine applies at all (`availability`: `always`, the
original behaviour, or `rules`) and, when it does, the rules: arrival hours per weekday, whole
days closed, covers per slot, how long a party dines, the table plan and the largest party that
may book without staff. `RESTAURANT_FILE` (TOML) may seed it at start-up; the database is the
source of truth once it holds a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from server.book.db_errors import DatabaseUnavailable, outage_as_unavailable
from server.book.models import parse_hh_mm, parse_iso_date
from server.settings import Settings, known_timezone

log = logging.getLogger("server.restaurant")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
MAX_PARTY = 20  # the reservations table's own limit

# What anyone may read (GET /api/restaurant without the staff token): what a caller may know.
PUBLIC_KEYS = (
    "name",
    "timezone",
    "hours",
    "closures",
    "max_party_size",
    "availability",
    "slot_minutes",
)

Clock = Annotated[
    dt.time, BeforeValidator(parse_hh_mm), PlainSerializer(lambda t: t.strftime("%H:%M"))
]
Day = Annotated[dt.date, BeforeValidator(parse_iso_date), PlainSerializer(lambda d: d.isoformat())]
# Whole numbers as JSON numbers only: not "15", 15.0 nor true (what /openapi.json promises).
Count = Annotated[int, Field(strict=True)]


def _storable(value: str) -> str:
    if "\x00" in value:  # the profile is jsonb, which cannot hold \u0000: a 422, not a 500
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


Text = Annotated[str, AfterValidator(_storable)]


class Closure(BaseModel):
    """Whole days closed, both ends included."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Day = Field(alias="from")
    end: Day = Field(alias="to")
    reason: Text = Field("", max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> Closure:
        if self.end < self.start:
            raise ValueError("'to' must not be before 'from'")
        return self

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=40)
    seats: Count = Field(ge=1, le=MAX_PARTY)
    min_party: Count = Field(1, ge=1, le=MAX_PARTY)


Window = tuple[Clock, Clock]


def _default_hours() -> dict[str, list[Window]]:
    lunch, dinner = (dt.time(12), dt.time(14)), (dt.time(18), dt.time(21, 30))
    return {day: [lunch, dinner] for day in WEEKDAYS}


class RestaurantProfile(BaseModel):
    """The whole profile, exactly as `PUT /api/restaurant` takes and `GET` answers it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text = Field("Luma Bistro", min_length=1, max_length=100)
    availability: Literal["always", "rules"] = "always"
    timezone: str = "Asia/Singapore"
    slot_minutes: Count = Field(15, ge=5, le=120)
    hours: dict[str, list[Window]] = Field(default_factory=_default_hours)
    closures: list[Closure] = Field(default_factory=list, max_length=200)
    covers_per_slot: Count | None = Field(None, ge=1, le=10_000)
    dining_minutes: dict[str, Count] = Field(default_factory=lambda: {"2": 90, "4": 120, "8": 150})
    tables: list[Table] = Field(default_factory=list, max_length=200)
    combinations: list[list[Text]] = Field(default_factory=list, max_length=200)
    max_party_size: Count = Field(MAX_PARTY, ge=1, le=MAX_PARTY)
    min_lead_minutes: Count = Field(0, ge=0, le=60 * 24 * 30)
    max_days_ahead: Count = Field(365, ge=0, le=3650)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return known_timezone(value)

    @field_validator("hours")
    @classmethod
    def _every_weekday(cls, value: dict[str, list[Window]]) -> dict[str, list[Window]]:
        unknown = set(value) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday(s) {sorted(unknown)}: use {', '.join(WEEKDAYS)}")
        for day, windows in value.items():
            for start, end in windows:
                if end < start:
                    raise ValueError(f"{day}: a window must not end before it starts")
        return {day: sorted(value.get(day, [])) for day in WEEKDAYS}  # a missing day is closed

    @field_validator("dining_minutes")
    @classmethod
    def _party_keys(cls, value: dict[str, int]) -> dict[str, int]:
        if not value:
            raise ValueError("must give at least one party size")
        for key, minutes in value.items():
            if not (key.isascii() and key.isdigit() and 1 <= int(key) <= MAX_PARTY):
                raise ValueError(f"keys are party sizes 1 to {MAX_PARTY}, not {key!r}")
            if not 15 <= minutes <= 24 * 60:
                raise ValueError("minutes must be from 15 to 1440")
        return dict(sorted(value.items(), key=lambda item: int(item[0])))

    @model_validator(mode="after")
    def _consistent(self) -> RestaurantProfile:
        if 24 * 60 % self.slot_minutes:
            raise ValueError("slot_minutes must divide a day (5, 10, 15, 20, 30, 60...)")
        for day, windows in self.hours.items():
            for start, end in windows:
                if (start.hour * 60 + start.minute) % self.slot_minutes or (
                    end.hour * 60 + end.minute
                ) % self.slot_minutes:
                    raise ValueError(f"hours.{day}: windows must be on the {self.slot_minutes}'")
        names = [table.name for table in self.tables]
        if len(set(names)) != len(names):
            raise ValueError("tables: names must be unique")
        for combo in self.combinations:
            if len(combo) < 2 or len(set(combo)) != len(combo):
                raise ValueError("combinations: each lists two or more different tables")
            if not set(combo) <= set(names):
                raise ValueError(f"combinations: unknown table in {combo}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def rules(self) -> bool:
        return self.availability == "rules"

    def today(self, now: dt.datetime | None = None) -> dt.date:
        """Today's date at the restaurant (`now`: this instant)."""
        return (now if now is not None else dt.datetime.now(dt.UTC)).astimezone(self.zone).date()

    def windows(self, day: dt.date) -> list[Window]:
        return self.hours.get(WEEKDAYS[day.weekday()], [])

    def closure(self, day: dt.date) -> Closure | None:
        return next((c for c in self.closures if c.covers(day)), None)

    def dining(self, party_size: int) -> dt.timedelta:
        """How long a party holds its table: the smallest key that covers it, else the largest."""
        sizes = sorted((int(k), v) for k, v in self.dining_minutes.items())
        minutes = next((v for k, v in sizes if party_size <= k), sizes[-1][1])
        return dt.timedelta(minutes=minutes)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def public_json(self) -> dict[str, Any]:
        whole = self.to_json()
        return {key: whole[key] for key in PUBLIC_KEYS}


class ProfileInvalid(ValueError):
    """A profile (or a change to it) that breaks the rules above, as {field: message}."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def parse_profile(data: Any) -> RestaurantProfile:
    if not isinstance(data, dict):
        raise ProfileInvalid({"body": "must be a JSON object"})
    try:
        return RestaurantProfile.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(part) for part in error["loc"]) or "body"
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "is not a known field"
            fields.setdefault(loc, message)
        raise ProfileInvalid(fields) from None


def merged(profile: RestaurantProfile, changes: Any) -> RestaurantProfile:
    """The profile with a PUT's keys replaced (each key whole); unknown keys are refused."""
    if not isinstance(changes, dict):
        raise ProfileInvalid({"body": "must be a JSON object"})
    return parse_profile({**profile.to_json(), **changes})


def default_profile(settings: Settings) -> RestaurantProfile:
    """What a database without a profile means: the original behaviour, under the settings'
    name and timezone."""
    return RestaurantProfile(name=settings.restaurant_name, timezone=settings.restaurant_timezone)


def seed_profile(settings: Settings) -> RestaurantProfile:
    """`RESTAURANT_FILE` when set (names and timezone default to the settings'), else defaults."""
    path: Path | None = settings.restaurant_file
    if path is None:
        return default_profile(settings)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileInvalid({"RESTAURANT_FILE": f"cannot read {path}: {exc}"}) from None
    base = {"name": settings.restaurant_name, "timezone": settings.restaurant_timezone}
    return parse_profile(_from_toml({**base, **data}))


def _from_toml(data: Any) -> Any:
    """TOML has dates and times of its own: turn them into the JSON forms the model reads."""
    if isinstance(data, dict):
        return {str(k): _from_toml(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_from_toml(v) for v in data]
    if isinstance(data, dt.time):
        return data.strftime("%H:%M")
    if isinstance(data, dt.date):
        return data.isoformat()
    return data


# --- SQL ---------------------------------------------------------------------------------------

SELECT_SQL = "SELECT profile FROM restaurant WHERE id = 1"
SEED_SQL = "INSERT INTO restaurant (id, profile) VALUES (1, $1) ON CONFLICT (id) DO NOTHING"
TIMEZONE_SQL = "SELECT profile->>'timezone' FROM restaurant WHERE id = 1"
LOCK_SQL = SELECT_SQL + " FOR UPDATE"
SAVE_SQL = """
INSERT INTO restaurant (id, profile) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile, updated_at = now()
"""


async def read(conn: asyncpg.Connection | asyncpg.Pool, settings: Settings) -> RestaurantProfile:
    """The stored profile, or the defaults when none is stored yet."""
    with outage_as_unavailable():
        stored = await conn.fetchval(SELECT_SQL)
    return parse_profile(stored) if stored is not None else default_profile(settings)


async def timezone(conn: asyncpg.Connection | asyncpg.Pool, settings: Settings) -> str:
    """The stored profile's timezone (`RESTAURANT_TIMEZONE` for a database without one)."""
    with outage_as_unavailable():
        stored = await conn.fetchval(TIMEZONE_SQL)
    return str(stored) if stored else settings.restaurant_timezone


async def today(
    conn: asyncpg.Connection | asyncpg.Pool, settings: Settings, now: dt.datetime | None = None
) -> dt.date:
    """Today at the restaurant, by the profile's timezone: the one "today" every booking is
    validated on (REST, the tools, the staff), the engine's and the instructions' too, so a
    date is never "today" for one and "tomorrow" for another. One small read: the profile
    may have been edited by another process a moment ago."""
    zone = ZoneInfo(await timezone(conn, settings))
    return (now if now is not None else dt.datetime.now(dt.UTC)).astimezone(zone).date()


async def seed(pool: asyncpg.Pool, profile: RestaurantProfile) -> RestaurantProfile | None:
    """Store `profile` unless the database already has one (then it wins); returns what is
    stored now, None on a database that could not be read."""
    with outage_as_unavailable():
        await pool.execute(SEED_SQL, profile.to_json())
        stored = await pool.fetchval(SELECT_SQL)
    return parse_profile(stored) if stored is not None else None


async def update(pool: asyncpg.Pool, settings: Settings, changes: Any) -> RestaurantProfile:
    """Apply a PUT: every key given replaces the stored one; the row is locked meanwhile so two
    edits at once are applied one after the other (no lost update)."""
    with outage_as_unavailable():
        async with pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(LOCK_SQL)
            current = parse_profile(stored) if stored is not None else default_profile(settings)
            profile = merged(current, changes)
            await conn.execute(SAVE_SQL, profile.to_json())
    return profile


class ProfileCache:
    """The process's latest profile, for what is built without waiting on the database (the
    model's instructions at a call's start). Refreshed at start-up, after each edit made here and
    every `restaurant_refresh_s` (an edit made by another process shows within that). Bookings
    never use it: they read the stored profile inside their own transaction."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.current = default_profile(settings)
        self._task: asyncio.Task[None] | None = None
        self._refreshed = asyncio.Event()  # set (and replaced) at each background re-read

    async def start(self, pool: asyncpg.Pool) -> None:
        """Store the seed profile (`RESTAURANT_FILE`, else the settings') unless the database
        has one, cache what is stored, and keep it fresh in the background."""
        stored = await seed(pool, seed_profile(self.settings))
        if stored is not None:
            self.current = stored
        self._task = asyncio.create_task(self._refresh_forever(pool))

    async def _refresh_forever(self, pool: asyncpg.Pool) -> None:
        while True:
            await asyncio.sleep(self.settings.restaurant_refresh_s)
            try:
                self.current = await read(pool, self.settings)
            except (DatabaseUnavailable, ProfileInvalid) as exc:
                log.warning("restaurant profile not refreshed: %s", exc)
            self._refreshed.set()
            self._refreshed = asyncio.Event()

    async def next_refresh(self) -> RestaurantProfile:
        """The profile after the next background re-read (what a test waits for)."""
        await self._refreshed.wait()
        return self.current

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
