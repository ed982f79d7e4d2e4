"""REST for the restaurant's profile and its availability.

- `GET /api/restaurant`: what a caller may know (name, timezone, hours, closures, the largest
  party, whether rules apply, the slot length); staff get the whole profile.
- `PUT /api/restaurant` (staff): every key optional, each replaces the stored one whole; unknown
  keys are refused; answers the whole profile. Bookings that the new rules would refuse stay:
  `GET /api/restaurant/conflicts` (staff) lists them, each with its reason.
- `GET /api/availability?date=&party_size=`: a day's arrival slots, each with its answer.
- `GET /api/availability/check?date=&time=&party_size=`: one time, as the model's tool answers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.access.staff_auth import staff_allowed
from server.book import availability as av
from server.book import restaurant, seating
from server.book.models import parse_hh_mm, parse_iso_date
from server.book.restaurant import ProfileCache, ProfileInvalid
from server.web.api import ApiError, JSONResponse, caller_settings, read_json
from server.web.staff_api import require_staff

PARTY_RANGE = "must be a whole number from 1 to 20"


def _is_staff(request: Request) -> bool:
    host = request.client.host if request.client else None
    return staff_allowed(request.headers, host, request.app.state.settings)


async def get_restaurant(request: Request) -> Response:
    staff = _is_staff(request)
    settings = request.app.state.settings if staff else caller_settings(request)
    profile = await restaurant.read(request.app.state.pool, settings)
    return JSONResponse(profile.to_json() if staff else profile.public_json())


async def put_restaurant(request: Request) -> Response:
    settings = require_staff(request)
    body = await read_json(request)
    try:
        profile = await restaurant.update(request.app.state.pool, settings, body)
    except ProfileInvalid as exc:
        raise ApiError(422, "validation_failed", "some fields are invalid", exc.fields) from None
    cache: ProfileCache = request.app.state.profile_cache
    cache.current = profile
    return JSONResponse(profile.to_json())


async def get_conflicts(request: Request) -> Response:
    settings = require_staff(request)
    now = dt.datetime.now(dt.UTC)
    pool = request.app.state.pool
    found = await seating.conflicts(pool, await restaurant.today(pool, settings, now), now)
    items = [{**booking.to_json(), "reason": reason} for booking, reason in found]
    return JSONResponse({"items": items})


def _query(request: Request, names: tuple[str, ...]) -> dict[str, Any]:
    """The named parameters, parsed; every problem named by its field (422)."""
    query = request.query_params
    fields: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    parsers = {"date": parse_iso_date, "time": parse_hh_mm, "party_size": _party_size}
    for name in names:
        if name not in query:
            fields[name] = "is required"
            continue
        try:
            parsed[name] = parsers[name](query[name])
        except ValueError as exc:
            fields[name] = str(exc)
    fields.update({name: "is not a known parameter" for name in sorted(set(query) - set(names))})
    if fields:
        raise ApiError(422, "validation_failed", "some parameters are invalid", fields)
    return parsed


def _party_size(raw: str) -> int:
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 20:
        return int(raw)
    raise ValueError(PARTY_RANGE)


async def get_availability(request: Request) -> Response:
    caller_settings(request)
    asked = _query(request, ("date", "party_size"))
    now = dt.datetime.now(dt.UTC)
    profile, day = await seating.day_state(
        request.app.state.pool, asked["date"], asked["party_size"], now
    )
    return JSONResponse(
        {
            "date": asked["date"].isoformat(),
            "party_size": asked["party_size"],
            "availability": profile.availability,
            "open": day.open,
            "reason": day.reason,
            "slots": [slot.to_json() for slot in day.slots],
        }
    )


async def check_availability(request: Request) -> Response:
    caller_settings(request)
    asked = _query(request, ("date", "time", "party_size"))
    slot = av.Request(asked["date"], asked["time"], asked["party_size"])
    decision = await seating.check(request.app.state.pool, slot, dt.datetime.now(dt.UTC))
    return JSONResponse(decision.to_json())


routes = [
    Route("/api/restaurant", get_restaurant, methods=["GET"]),
    Route("/api/restaurant", put_restaurant, methods=["PUT"]),
    Route("/api/restaurant/conflicts", get_conflicts, methods=["GET"]),
    Route("/api/availability", get_availability, methods=["GET"]),
    Route("/api/availability/check", check_availability, methods=["GET"]),
]
