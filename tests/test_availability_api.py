"""The availability engine over real HTTP: the profile, a day's slots, one check, refusals with
alternatives, requests that staff confirm or decline, staff overrides and the conflicts list."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.book import availability as av
from server.book import restaurant
from server.book.restaurant import WEEKDAYS, ProfileCache, seed_profile
from server.settings import PROJECT_ROOT
from tests.conftest import serve_app

PHONE = "+6598207272"
NOT_LOCAL = {"X-Forwarded-For": "203.0.113.9"}  # through a proxy: not staff (no STAFF_TOKEN set)


def rules_profile(**changes: Any) -> dict[str, Any]:
    """Open every day but Monday for dinner, 20 covers a slot, three tables."""
    profile: dict[str, Any] = {
        "availability": "rules",
        "hours": {day: [["18:00", "21:30"]] for day in WEEKDAYS if day != "mon"},
        "closures": [],
        "covers_per_slot": 20,
        "dining_minutes": {"2": 90, "4": 120, "8": 150},
        "tables": [
            {"name": "T1", "seats": 2},
            {"name": "T2", "seats": 4, "min_party": 3},
            {"name": "T3", "seats": 2},
        ],
        "combinations": [["T1", "T3"]],
        "max_party_size": 6,
        "min_lead_minutes": 60,
        "max_days_ahead": 60,
    }
    profile.update(changes)
    return profile


@pytest.fixture
async def client(live_server, pool) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the live server (the `pool` fixture resets the profile to `always`)."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        yield http


def next_weekday(settings, weekday: str, at_least: int = 2) -> dt.date:
    day = settings.today() + dt.timedelta(days=at_least)
    while WEEKDAYS[day.weekday()] != weekday:
        day += dt.timedelta(days=1)
    return day


def booking(day: dt.date, time: str = "19:00", party: int = 2, **more: Any) -> dict[str, Any]:
    return {
        "name": "Ada Lovelace",
        "phone_number": PHONE,
        "reservation_date": day.isoformat(),
        "reservation_time": time,
        "party_size": party,
        **more,
    }


# --- the profile -------------------------------------------------------------------------------


async def test_profile_public_and_staff_views(client, settings):
    await client.put("/api/restaurant", json=rules_profile())
    staff = (await client.get("/api/restaurant")).json()
    assert staff["tables"][0]["name"] == "T1" and staff["covers_per_slot"] == 20
    public = (await client.get("/api/restaurant", headers=NOT_LOCAL)).json()
    assert set(public) == {
        "name",
        "timezone",
        "hours",
        "closures",
        "max_party_size",
        "availability",
        "slot_minutes",
    }
    assert public["availability"] == "rules" and public["hours"]["mon"] == []
    assert public["name"] == settings.restaurant_name


async def test_put_replaces_the_keys_given_and_answers_the_whole_profile(client):
    first = (await client.put("/api/restaurant", json=rules_profile())).json()
    answer = await client.put("/api/restaurant", json={"covers_per_slot": 12})
    assert answer.status_code == 200
    assert answer.json() == {**first, "covers_per_slot": 12}
    assert (await client.get("/api/restaurant")).json() == answer.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"max_party_size": 0}, "max_party_size"),
        ({"hours": {"mon": [["25:00", "26:00"]]}}, "hours.mon.0.0"),
        ({"name": "Bistro\u0000"}, "name"),  # jsonb cannot store NUL: refused, not a 500
        (
            {"closures": [{"from": "2030-01-01", "to": "2030-01-02", "reason": "\u0000"}]},
            "closures.0.reason",
        ),
        ({"tables": [{"name": "T\u0000", "seats": 2}]}, "tables.0.name"),
    ],
)
async def test_put_refuses_bad_profiles_naming_the_field(client, body, field):
    response = await client.put("/api/restaurant", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


async def test_only_staff_edit_the_profile_or_see_conflicts(client):
    assert (await client.put("/api/restaurant", json={}, headers=NOT_LOCAL)).status_code == 403
    assert (await client.get("/api/restaurant/conflicts", headers=NOT_LOCAL)).status_code == 403


# --- a day's slots and one check ---------------------------------------------------------------


async def test_always_offers_every_slot_of_the_day(client, settings):
    day = settings.today() + dt.timedelta(days=3)
    answer = await client.get("/api/availability", params={"date": day, "party_size": 2})
    body = answer.json()
    assert (body["availability"], body["open"], body["reason"]) == ("always", True, None)
    assert len(body["slots"]) == 96 and all(slot["available"] for slot in body["slots"])
    check = {"date": day, "time": "03:00", "party_size": 20}
    answer = await client.get("/api/availability/check", params=check)
    assert answer.json() == {"available": True, "reason": None, "alternatives": []}


async def test_rules_offer_the_days_arrival_slots(client, settings):
    await client.put("/api/restaurant", json=rules_profile())
    tuesday = next_weekday(settings, "tue")
    body = (await client.get("/api/availability", params={"date": tuesday, "party_size": 2})).json()
    assert body["open"] and body["availability"] == "rules"
    assert [s["time"] for s in body["slots"]][:2] == ["18:00", "18:15"]
    assert body["slots"][-1] == {"time": "21:30", "available": True, "reason": None}
    monday = next_weekday(settings, "mon")
    body = (await client.get("/api/availability", params={"date": monday, "party_size": 2})).json()
    assert (body["open"], body["reason"], body["slots"]) == (False, "closed", [])


async def test_check_says_why_and_offers_alternatives(client, settings):
    await client.put("/api/restaurant", json=rules_profile())
    monday = next_weekday(settings, "mon")
    check = {"date": monday, "time": "19:00", "party_size": 2}
    body = (await client.get("/api/availability/check", params=check)).json()
    assert body["available"] is False and body["reason"] == "closed"
    tuesday = (monday + dt.timedelta(days=1)).isoformat()
    assert body["alternatives"][0] == {"date": tuesday, "time": "19:00"}
    assert len(body["alternatives"]) == 3


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"date": "12/01/2026", "party_size": "2"}, {"date"}),
        ({"date": "2026-12-01", "party_size": "0"}, {"party_size"}),
        ({"date": "2026-12-01"}, {"party_size"}),
        ({"date": "2026-12-01", "party_size": "2", "colour": "red"}, {"colour"}),
    ],
)
async def test_bad_availability_parameters_name_the_field(client, params, fields):
    response = await client.get("/api/availability", params=params)
    assert response.status_code == 422
    assert set(response.json()["error"]["fields"]) == fields


async def test_bad_check_time_names_the_field(client):
    params = {"date": "2026-12-01", "time": "7pm", "party_size": "2"}
    response = await client.get("/api/availability/check", params=params)
    assert response.status_code == 422 and set(response.json()["error"]["fields"]) == {"time"}


# --- bookings under the rules ------------------------------------------------------------------


async def test_a_refused_booking_is_409_with_alternatives_and_one_of_them_books(client, settings):
    await client.put("/api/restaurant", json=rules_profile())
    refused = await client.post("/api/reservations", json=booking(next_weekday(settings, "mon")))
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"]["code"] == "slot_unavailable"
    assert body["reason"] == body["error"]["reason"] == "closed"
    alternative = body["alternatives"][0]
    made = await client.post(
        "/api/reservations",
        json=booking(dt.date.fromisoformat(alternative["date"]), alternative["time"]),
    )
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "confirmed" and made.json()["tables"] == ["T1"]
    assert (await client.get(f"/api/reservations/{PHONE}")).json()["tables"] == ["T1"]


async def test_a_change_into_a_refused_slot_is_409_and_changes_nothing(client, settings):
    await client.put("/api/restaurant", json=rules_profile())
    tuesday = next_weekday(settings, "tue")
    made = (await client.post("/api/reservations", json=booking(tuesday))).json()
    refused = await client.patch(f"/api/reservations/{PHONE}", json={"reservation_time": "23:00"})
    assert refused.status_code == 409 and refused.json()["reason"] == "outside_hours"
    assert (await client.get(f"/api/reservations/{PHONE}")).json() == made
    moved = await client.patch(f"/api/reservations/{PHONE}", json={"party_size": 4})
    assert moved.status_code == 200 and moved.json()["tables"] == ["T2"]
    grown = await client.patch(f"/api/reservations/{PHONE}", json={"party_size": 8})
    assert grown.status_code == 409 and grown.json()["reason"] == "party_too_large"
    assert (await client.get(f"/api/reservations/{PHONE}")).json() == moved.json()


async def test_a_large_party_is_a_request_that_staff_confirm(client, settings):
    await client.put("/api/restaurant", json=rules_profile(tables=[], combinations=[]))
    tuesday = next_weekday(settings, "tue")
    made = await client.post("/api/reservations", json=booking(tuesday, party=8))
    assert made.status_code == 201
    assert (made.json()["status"], made.json()["tables"]) == ("requested", None)
    listed = await client.get("/api/reservations", params={"status": "requested"})
    assert [r["phone_number"] for r in listed.json()["items"]] == [PHONE]
    bad = await client.patch(f"/api/reservations/{PHONE}", json={"status": "cancelled"})
    assert bad.status_code == 422 and "status" in bad.json()["error"]["fields"]
    confirmed = await client.patch(f"/api/reservations/{PHONE}", json={"status": "confirmed"})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    history = (await client.get(f"/api/reservations/{PHONE}/history")).json()["items"]
    assert [e["action"] for e in history] == ["created", "confirmed"]


async def test_a_declined_request_is_recorded_as_declined(client, settings):
    await client.put("/api/restaurant", json=rules_profile())
    await client.post("/api/reservations", json=booking(next_weekday(settings, "tue"), party=8))
    declined = await client.delete(f"/api/reservations/{PHONE}")
    assert declined.status_code == 200 and declined.json()["status"] == "cancelled"
    history = (await client.get(f"/api/reservations/{PHONE}/history")).json()["items"]
    assert [e["action"] for e in history] == ["created", "declined"]


async def test_staff_may_override_and_the_history_says_so(client, settings):
    await client.put("/api/restaurant", json=rules_profile())
    monday = booking(next_weekday(settings, "mon"), override=True)
    staff = {"X-Source": "staff"}
    refused = await client.post("/api/reservations", json=monday, headers=NOT_LOCAL | staff)
    assert refused.status_code == 403
    no_source = await client.post("/api/reservations", json=monday)
    assert no_source.status_code == 403 and "override" in no_source.json()["error"]["fields"]
    bad = await client.post("/api/reservations", json={**monday, "override": "yes"}, headers=staff)
    assert bad.status_code == 422 and "override" in bad.json()["error"]["fields"]
    made = await client.post("/api/reservations", json=monday, headers=staff)
    assert made.status_code == 201, made.text
    assert made.json()["tables"] == ["T1"]  # seated when a table is free
    history = (await client.get(f"/api/reservations/{PHONE}/history")).json()["items"]
    assert [(e["source"], e["override"]) for e in history] == [("staff", True)]


async def test_conflicts_list_bookings_the_new_rules_refuse_and_keep_them(client, settings):
    tuesday = next_weekday(settings, "tue")
    made = await client.post("/api/reservations", json=booking(tuesday, "16:00"))
    assert made.status_code == 201  # under `always`
    await client.put("/api/restaurant", json=rules_profile())
    items = (await client.get("/api/restaurant/conflicts")).json()["items"]
    assert [(i["phone_number"], i["reason"]) for i in items] == [(PHONE, "outside_hours")]
    assert (await client.get(f"/api/reservations/{PHONE}")).json()["status"] == "confirmed"
    # Its notes can still be corrected: only a new date, time or size is judged.
    fixed = await client.patch(f"/api/reservations/{PHONE}", json={"other_info": {"n": 1}})
    assert fixed.status_code == 200


# --- RESTAURANT_FILE -----------------------------------------------------------------------------


async def test_restaurant_file_seeds_an_empty_database_and_never_overrides_it(
    settings, database, pool
):
    example = PROJECT_ROOT / "restaurant.example.toml"
    seeded = settings.model_copy(update={"restaurant_file": example})
    await pool.execute("DELETE FROM restaurant")
    try:
        async with serve_app(seeded) as live, httpx.AsyncClient(base_url=live.url) as http:
            profile = (await http.get("/api/restaurant")).json()
            assert profile["availability"] == "rules"
            assert sum(table["seats"] for table in profile["tables"]) == 40
            await http.put("/api/restaurant", json={"covers_per_slot": 30})
        async with serve_app(seeded) as live, httpx.AsyncClient(base_url=live.url) as http:
            assert (await http.get("/api/restaurant")).json()["covers_per_slot"] == 30
    finally:
        await pool.execute("DELETE FROM restaurant")


def test_the_example_bistro_seats_a_party_of_six_at_a_combination(settings):
    example = settings.model_copy(
        update={"restaurant_file": PROJECT_ROOT / "restaurant.example.toml"}
    )
    bistro = seed_profile(example)
    tuesday = dt.date(2026, 12, 8)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    decision = av.decide(bistro, [], av.Request(tuesday, dt.time(19), 6), now)
    assert decision.tables == ("B1", "A1")
    assert av.decide(bistro, [], av.Request(tuesday, dt.time(19), 2), now).tables == ("A1",)


async def test_each_process_picks_up_another_processes_edit(settings, database, pool):
    """The cache behind the instructions re-reads the stored profile on its own."""
    cache = ProfileCache(settings.model_copy(update={"restaurant_refresh_s": 0.05}))
    await pool.execute("DELETE FROM restaurant")
    await cache.start(pool)
    try:
        assert cache.current.availability == "always"
        await restaurant.update(pool, settings, {"availability": "rules"})  # "another process"
        async with asyncio.timeout(5):
            while (await cache.next_refresh()).availability != "rules":
                pass
    finally:
        await cache.close()
        await pool.execute("DELETE FROM restaurant")


# --- the ends of the calendar ------------------------------------------------------------------


@pytest.mark.parametrize("availability", ["always", "rules"])
async def test_dates_at_the_ends_of_the_calendar_are_answered_not_crashed(client, availability):
    """date.min and date.max are valid dates: their neighbours and the weeks after are not."""
    profile = rules_profile(timezone="Pacific/Kiritimati") | {"availability": availability}
    assert (await client.put("/api/restaurant", json=profile)).status_code == 200
    for day, reason in [("0001-01-01", "in_the_past"), ("9999-12-31", "too_far")]:
        slots = await client.get("/api/availability", params={"date": day, "party_size": 2})
        assert slots.status_code == 200, slots.text
        assert (slots.json()["open"], slots.json()["reason"]) == (False, reason)
        check = {"date": day, "time": "19:00", "party_size": 2}
        answer = await client.get("/api/availability/check", params=check)
        assert answer.status_code == 200, answer.text
        expected = {"available": False, "reason": reason, "alternatives": []}
        assert answer.json() == (
            expected if availability == "rules" else {**expected, "available": True, "reason": None}
        )
    far = await client.post("/api/reservations", json=booking(dt.date.max))
    if availability == "rules":
        assert far.status_code == 409 and far.json()["reason"] == "too_far", far.text
    else:
        assert far.status_code == 201, far.text  # `always` books any future date, as before
