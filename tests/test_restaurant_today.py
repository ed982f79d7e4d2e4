"""One "today": the profile's timezone decides it for every booking (REST, the tools, the staff);
`RESTAURANT_TIMEZONE` only seeds a fresh profile.

The server runs with `RESTAURANT_TIMEZONE=Pacific/Pago_Pago` (UTC-11) and its profile says
`Pacific/Kiritimati` (UTC+14): 25 hours apart, so at every instant the profile's date is already
past the setting's, and a date that is "today" for the setting is yesterday for the restaurant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from server.book import restaurant
from tests.conftest import LiveServer, serve_app
from tools import ToolContext, default_registry

SETTING_ZONE = "Pacific/Pago_Pago"
PROFILE_ZONE = "Pacific/Kiritimati"
PHONE = "+6598207272"


def today_in(zone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(zone)).date()


def booking(day: dt.date) -> dict[str, object]:
    return {
        "name": "Ada Lovelace",
        "phone_number": PHONE,
        "reservation_date": day.isoformat(),
        "reservation_time": "00:15",  # past already, perhaps: under `always` only the date counts
        "party_size": 2,
    }


@pytest.fixture
async def server(settings, database, pool) -> AsyncIterator[LiveServer]:
    behind = settings.model_copy(update={"restaurant_timezone": SETTING_ZONE})
    await pool.execute("DELETE FROM restaurant")  # a fresh database: the setting seeds it
    async with serve_app(behind) as live:
        yield live


@pytest.fixture
async def http(server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


async def test_a_fresh_profile_takes_the_settings_timezone(http, server, pool):
    assert (await http.get("/api/restaurant")).json()["timezone"] == SETTING_ZONE
    assert await restaurant.today(pool, server.settings) == today_in(SETTING_ZONE)


async def test_rest_and_staff_judge_today_by_the_profile(http, server, pool):
    moved = await http.put("/api/restaurant", json={"timezone": PROFILE_ZONE})
    assert moved.status_code == 200 and moved.json()["availability"] == "always"
    yesterday, today = today_in(SETTING_ZONE), today_in(PROFILE_ZONE)
    assert yesterday < today  # the setting's "today" is the restaurant's past
    assert await restaurant.today(pool, server.settings) == today

    refused = await http.post("/api/reservations", json=booking(yesterday))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["fields"] == {
        "reservation_date": f"must not be in the past (today is {today.isoformat()})"
    }
    made = await http.post("/api/reservations", json=booking(today))
    assert made.status_code == 201, made.text

    staff = {"X-Source": "staff"}
    back = await http.patch(
        f"/api/reservations/{PHONE}",
        json={"reservation_date": yesterday.isoformat()},
        headers=staff,
    )
    assert back.status_code == 422 and "reservation_date" in back.json()["error"]["fields"]
    listed = (await http.get("/api/reservations", params={"date": today.isoformat()})).json()
    assert [item["phone_number"] for item in listed["items"]] == [PHONE]
    cancelled = await http.delete(f"/api/reservations/{PHONE}", headers=staff)
    assert cancelled.status_code == 200  # today's booking is still upcoming for the staff


async def test_the_tools_judge_today_by_the_profile(http, server, pool):
    assert (await http.put("/api/restaurant", json={"timezone": PROFILE_ZONE})).status_code == 200
    yesterday, today = today_in(SETTING_ZONE), today_in(PROFILE_ZONE)
    ctx = ToolContext(pool=pool, settings=server.settings)
    registry = default_registry()

    async def run(tool: str, **args: object) -> dict[str, object]:
        result = await registry.run(tool, orjson.dumps(args).decode(), ctx, 5.0)
        return result.output

    slot = {"time": "00:15", "party_size": 2}
    past = await run("check_availability", date=yesterday.isoformat(), **slot)
    assert past["ok"] is False and "date" in past["fields"]  # type: ignore[operator]
    assert (await run("check_availability", date=today.isoformat(), **slot))["available"] is True
    who = {"name": "Ada Lovelace", "phone_number": PHONE}
    refused = await run("make_reservation", **who, date=yesterday.isoformat(), **slot)
    assert refused["ok"] is False and "date" in refused["fields"]  # type: ignore[operator]
    made = await run("make_reservation", **who, date=today.isoformat(), **slot)
    assert made["ok"] is True and made["status"] == "confirmed"
    moved = await run("change_reservation", **who, date=yesterday.isoformat())
    assert moved["ok"] is False and "date" in moved["fields"]  # type: ignore[operator]
    assert (await run("cancel_reservation", **who))["ok"] is True
