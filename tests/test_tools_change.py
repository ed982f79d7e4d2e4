"""change_reservation and cancel_reservation on a real database: guarded by the name, recorded
in the history with the call that made them, every outcome words the model can say."""

from __future__ import annotations

import dataclasses

import pytest

from server.book import reservations
from tests.test_tools import booking_args, run, tomorrow
from tools import ToolContext


@pytest.fixture
def ctx(pool, settings):
    return ToolContext(pool=pool, settings=settings, call_id="call_1")


async def booked(ctx, settings) -> dict:
    result = await run(ctx, "make_reservation", booking_args(settings))
    assert result.output["ok"], result.output
    return result.output["reservation"]


async def test_change_moves_the_booking_and_keeps_its_number(ctx, settings, pool):
    made = await booked(ctx, settings)
    result = await run(
        ctx,
        "change_reservation",
        {"phone_number": "9820 7272", "name": "ada lovelase", "time": "20:00", "party_size": 6},
    )
    out = result.output
    assert out["ok"] and out["status"] == "changed"
    assert out["reservation"]["confirmation_number"] == made["confirmation_number"]
    assert (out["reservation"]["reservation_time"], out["reservation"]["party_size"]) == (
        "20:00",
        6,
    )
    assert out["previous"]["reservation_time"] == "19:00"
    assert out["confirmation_number_spelled"] == " ".join(made["confirmation_number"])
    event = result.page_event
    assert event["type"] == "reservation.changed" and event["changed"] is True
    assert event["reservation"] == out["reservation"] and event["previous"]["party_size"] == 4
    found = await reservations.find(pool, "+6598207272")
    assert (found.reservation_time.hour, found.party_size) == (20, 6)
    history = await reservations.history(pool, "+6598207272")
    assert [(e.action, e.source, e.call_id) for e in history] == [
        ("created", "voice", "call_1"),
        ("changed", "voice", "call_1"),
    ]


async def test_notes_join_the_other_details(ctx, settings, pool):
    await booked(ctx, settings)
    await pool.execute("UPDATE reservations SET other_info = other_info || '{\"vip\": true}'")
    result = await run(
        ctx, "change_reservation", {"phone_number": "98207272", "name": "Ada", "notes": "cake"}
    )
    assert result.output["reservation"]["other_info"] == {"notes": "cake", "vip": True}
    cleared = await run(
        ctx, "change_reservation", {"phone_number": "98207272", "name": "Ada", "notes": ""}
    )
    assert cleared.output["reservation"]["other_info"] == {"vip": True}


async def test_the_same_details_again_change_nothing(ctx, settings, pool):
    await booked(ctx, settings)
    result = await run(
        ctx, "change_reservation", {"phone_number": "98207272", "name": "Ada", "time": "19:00"}
    )
    assert result.output["status"] == "unchanged"
    assert result.page_event["changed"] is False
    assert len(await reservations.history(pool, "+6598207272")) == 1


@pytest.mark.parametrize("tool", ["change_reservation", "cancel_reservation"])
async def test_a_wrong_name_is_no_booking_found(ctx, settings, pool, tool):
    await booked(ctx, settings)
    args = {"phone_number": "98207272", "name": "Alan Turing"}
    if tool == "change_reservation":
        args["party_size"] = 2
    result = await run(ctx, tool, args)
    assert result.output == {
        "ok": True,
        "found": False,
        "message": "I could not find a reservation for that phone number and name.",
    }
    assert result.page_event["type"] == "reservation.not_found"
    found = await reservations.find(pool, "+6598207272")
    assert found.party_size == 4 and found.status == "confirmed"  # untouched
    nobody = await run(ctx, tool, {**args, "phone_number": "81234567", "name": "Ada"})
    assert nobody.output["found"] is False


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"name": "Ada"}, "changes"),
        ({"name": "Ada", "date": "2020-01-01"}, "date"),
        ({"name": "Ada", "time": "7pm"}, "time"),
        ({"name": "Ada", "party_size": 30}, "party_size"),
        ({"name": "Ada", "notes": 5}, "notes"),
        ({"name": "Ada", "party_size": 2, "table": 4}, "table"),
        ({"party_size": 2}, "name"),
    ],
)
async def test_change_arguments_are_checked(ctx, settings, arguments, field):
    result = await run(ctx, "change_reservation", {"phone_number": "98207272", **arguments})
    assert result.output["error"] == "invalid_arguments"
    assert field in result.output["fields"]


async def test_cancel_then_the_phone_can_book_again(ctx, settings, pool):
    made = await booked(ctx, settings)
    result = await run(ctx, "cancel_reservation", {"phone_number": "+65 9820 7272", "name": "Ada"})
    assert result.output["status"] == "cancelled"
    assert result.output["reservation"]["status"] == "cancelled"
    assert result.page_event["type"] == "reservation.cancelled"
    assert result.page_event["confirmation_number"] == made["confirmation_number"]
    assert await reservations.find(pool, "+6598207272") is None
    again = await run(ctx, "cancel_reservation", {"phone_number": "98207272", "name": "Ada"})
    assert again.output["found"] is False
    rebooked = await run(ctx, "make_reservation", booking_args(settings, date=tomorrow(settings)))
    assert rebooked.output["status"] == "confirmed"
    assert rebooked.output["confirmation_number"] != made["confirmation_number"]


async def test_the_context_names_the_source_and_the_call(ctx, settings, pool):
    staff = dataclasses.replace(ctx, source="staff", call_id=None)
    await run(staff, "make_reservation", booking_args(settings))
    history = await reservations.history(pool, "+6598207272")
    assert [(e.source, e.call_id) for e in history] == [("staff", None)]
