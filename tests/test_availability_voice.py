"""The rules by voice: the instructions carry the hours, the tools answer in words with
alternatives, and the offline model answers "are you open on Monday?" and books an alternative."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

import offline_model
from offline_model import dialog
from offline_model.hours import open_answer, read_hours
from offline_model.intents import parse
from server.book.restaurant import WEEKDAYS, default_profile, parse_profile
from server.realtime.instructions import session_config
from tests.conftest import LiveServer, serve_app
from tests.test_relay import call
from tools import ToolContext, default_registry

SG = dt.timezone(dt.timedelta(hours=8))
MONDAY_NOON = dt.datetime(2026, 12, 7, 12, 0, tzinfo=SG)
PROFILE: dict[str, Any] = {
    "availability": "rules",
    "hours": {day: [["18:00", "21:30"]] for day in WEEKDAYS if day != "mon"}
    | {"sat": [["11:30", "14:00"], ["18:00", "22:00"]]},
    "closures": [{"from": "2026-12-24", "to": "2026-12-26", "reason": "Christmas"}],
    "min_lead_minutes": 0,
    "max_party_size": 8,
}


def instructions(settings, now: dt.datetime, **changes: Any) -> str:
    profile = parse_profile({**PROFILE, **changes})
    config: dict[str, Any] = session_config(settings, [], profile=profile, now=now)
    return str(config["instructions"])


# --- the instructions ----------------------------------------------------------------------------


def test_instructions_carry_hours_closures_and_today(settings):
    text = instructions(settings, MONDAY_NOON)
    assert "- Monday: closed" in text
    assert "- Saturday: 11:30-14:00, 18:00-22:00" in text
    assert "Closed all day: 2026-12-24 to 2026-12-26 (Christmas)" in text
    assert "Today is 2026-12-07 and the restaurant is closed today." in text
    tuesday = instructions(settings, MONDAY_NOON + dt.timedelta(days=1))
    assert "the restaurant is open today: arrivals 18:00-21:30" in tuesday
    christmas = instructions(settings, dt.datetime(2026, 12, 25, 12, tzinfo=SG))
    assert "the restaurant is closed today (Christmas)" in christmas


def test_instructions_judge_today_in_the_restaurants_timezone(settings):
    # 17:00 UTC on Monday is already Tuesday 01:00 in Singapore.
    text = instructions(settings, dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.UTC))
    assert "Today is 2026-12-08 and the restaurant is open today" in text


def test_always_leaves_the_instructions_as_they_were(settings):
    before = session_config(settings, [], now=MONDAY_NOON)["instructions"]
    default = default_profile(settings)
    assert session_config(settings, [], profile=default, now=MONDAY_NOON)["instructions"] == before
    assert "Opening hours" not in before


# --- the offline model reads them --------------------------------------------------------------


def test_offline_model_answers_are_you_open_from_the_instructions(settings):
    text = instructions(settings, MONDAY_NOON)
    today = MONDAY_NOON.date()

    def answer(said: str) -> str:
        slots = dialog.Slots()
        slots.absorb(parse(said, today))
        step = dialog.decide(slots, {"check_availability"}, text)
        assert isinstance(step, dialog.Say) and slots.intent is None
        return step.text

    assert answer("Are you open on Monday?").startswith("Sorry, we're closed on Monday")
    assert answer("are you open next tuesday?") == (
        "Yes, we're open on Tuesday, December 8: you can arrive 18:00-21:30. Shall I book a table?"
    )
    assert "for Christmas" in answer("Are you open on December 25?")
    week = answer("What are your opening hours?")
    assert "Saturday 11:30-14:00, 18:00-22:00" in week and "closed on Monday" in week
    assert open_answer("You are the host.", "2026-12-14", None) == (
        "We take bookings any day — which date and time would you like?"
    )
    assert read_hours("You are the host.") is None


def test_offline_model_offers_the_alternatives_of_a_refusal():
    slots = dialog.Slots(intent="book", date="2026-12-14", time="19:00", party_size=2)
    refused = (
        '{"ok": false, "error": "slot_unavailable", "reason": "closed", "alternatives": '
        '[{"date": "2026-12-15", "time": "19:00"}, {"date": "2026-12-15", "time": "18:45"}],'
        ' "message": "Sorry, the restaurant is closed that day."}'
    )
    said = dialog.answer(dialog.Call("make_reservation", {}), refused, slots)
    assert said == (
        "Sorry, we're closed that day. I could offer Tuesday, December 15 at 7 pm or "
        "Tuesday, December 15 at 6:45 pm. Which would you like?"
    )
    assert (slots.intent, slots.date, slots.time) == ("book", None, None)  # asks for another


# --- the tools -----------------------------------------------------------------------------------


@pytest.fixture
async def rules(pool) -> None:
    """The profile with rules, stored (the `pool` fixture puts the default back after)."""
    await pool.execute(
        "INSERT INTO restaurant (id, profile) VALUES (1, $1)"
        " ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile",
        parse_profile(PROFILE).to_json(),
    )


def next_monday(settings) -> dt.date:
    day = settings.today() + dt.timedelta(days=1)
    return day + dt.timedelta(days=(7 - day.weekday()) % 7)


async def test_tools_answer_in_words_with_alternatives(pool, settings, rules):
    ctx = ToolContext(pool=pool, settings=settings)
    registry = default_registry()
    monday = next_monday(settings).isoformat()
    when = {"date": monday, "time": "19:00", "party_size": 2}
    checked = await registry.run("check_availability", orjson_dumps(when), ctx, 5)
    assert checked.output["available"] is False and checked.output["reason"] == "closed"
    assert len(checked.output["alternatives"]) == 3
    assert checked.output["message"].startswith("Sorry, the restaurant is closed that day.")
    assert checked.page_event is not None and checked.page_event["reason"] == "closed"
    book = {**when, "name": "Ada Lovelace", "phone_number": "+6598207272"}
    refused = await registry.run("make_reservation", orjson_dumps(book), ctx, 5)
    assert refused.output["ok"] is False and refused.output["error"] == "slot_unavailable"
    assert "I can offer" in refused.output["message"]
    assert refused.page_event is not None and refused.page_event["type"] == "reservation.failed"
    large = {**book, "date": refused.output["alternatives"][0]["date"], "party_size": 20}
    requested = await registry.run("make_reservation", orjson_dumps(large), ctx, 5)
    assert requested.output["status"] == "requested"
    assert requested.page_event is not None
    assert requested.page_event["type"] == "reservation.requested"


def orjson_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- by voice, end to end ------------------------------------------------------------------------


@pytest.fixture
async def voice_server(settings, database) -> AsyncIterator[LiveServer]:
    async with offline_model.OfflineModel(pace=0.002) as model:
        relay = settings.model_copy(update={"openai_base_url": model.url, "openai_api_key": None})
        async with serve_app(relay) as live:
            yield live


async def test_a_closed_day_is_refused_with_alternatives_and_the_next_call_books_one(
    voice_server, pool, settings, rules
):
    async with httpx.AsyncClient(base_url=voice_server.url, timeout=10) as http:
        await http.put("/api/restaurant", json=PROFILE)  # this process's cache: the hours now
    phone = "81234567"
    async with call(voice_server) as caller:
        assert "- Monday: closed" in caller.events[-1]["session"]["instructions"]
        await caller.say("Are you open next Monday?")
        heard = await caller.until("response.output_audio_transcript.done")
        assert heard["transcript"].startswith("Sorry, we're closed on Monday")
        await caller.say(
            f"I'd like to book a table for 2 next Monday at 7pm. My name is Ada Lovelace,"
            f" my phone is {phone}."
        )
        failed = await caller.until("reservation.failed")
        assert failed["reason"] == "slot_unavailable" and failed["alternatives"]
        spoken = await caller.until("response.output_audio_transcript.done")
        assert "I could offer" in spoken["transcript"]
    first = failed["alternatives"][0]
    async with call(voice_server) as caller:
        await caller.say(
            f"Book a table for 2 on {first['date']} at {first['time']}. My name is Ada Lovelace,"
            f" my phone is {phone}."
        )
        confirmed = await caller.until("reservation.confirmed")
    booked = confirmed["reservation"]
    assert (booked["reservation_date"], booked["reservation_time"]) == (
        first["date"],
        first["time"],
    )
