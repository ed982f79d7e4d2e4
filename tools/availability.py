"""check_availability (schema beside its handler), and the words of a refusal.

The engine's answer reaches the model as JSON it can speak from: `available`, the `reason`, up to
three `alternatives`, and a `message` in plain words with the alternatives said as a person says
them ("Tuesday 8 December at 19:00"). make_reservation and change_reservation use the same words
when the rules refuse a time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocol import realtime as p
from server.book import availability as av
from server.book import restaurant, seating
from server.book.models import RequestInvalid, validate_slot
from server.book.reservations import SlotUnavailable
from tools.registry import Tool, ToolArgumentsInvalid, ToolContext, ToolResult

DATE = {"type": "string", "description": "Date as YYYY-MM-DD in the restaurant's timezone."}
TIME = {"type": "string", "description": "Time as HH:MM, 24-hour clock, e.g. 19:30."}
PARTY = {"type": "integer", "minimum": 1, "maximum": 20, "description": "Number of guests."}

# Argument names as the model sees them -> the reservation fields they fill.
FIELD_NAMES = {"reservation_date": "date", "reservation_time": "time", "other_info": "notes"}

WHY = {
    av.IN_THE_PAST: "that time has already passed",
    av.TOO_FAR: "we do not take bookings that far ahead yet",
    av.CLOSED: "the restaurant is closed that day",
    av.OUTSIDE_HOURS: "we do not seat guests at that time",
    av.TOO_SOON: "that is too short notice to book",
    av.PARTY_TOO_LARGE: "a party that size is a request the restaurant confirms",
    av.FULL: "we are fully booked then",
}


def speak_date(day: dt.date) -> str:
    """ "Tuesday 1 December": how a date is said, not written."""
    return f"{day:%A} {day.day} {day:%B}"


def model_fields(fields: dict[str, str]) -> dict[str, str]:
    """Name problems by the argument the model sent, not by our column names."""
    return {FIELD_NAMES.get(k, k): v for k, v in fields.items()}


def say_alternatives(alternatives: list[av.Alternative]) -> str:
    if not alternatives:
        return "I have no other time to offer in the next few weeks."
    said = [f"{speak_date(a.day)} at {a.time:%H:%M}" for a in alternatives]
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " or " + said[-1]
    return f"I can offer {listed}."


def refusal_message(decision: av.Decision) -> str:
    """What the host can say: why, then the nearest times that would do."""
    why = WHY.get(decision.reason or "", "that time is not available")
    if decision.reason == av.PARTY_TOO_LARGE:
        return f"Sorry, {why}: the booking stays as it was."
    return f"Sorry, {why}. {say_alternatives(decision.alternatives)}"


def refusal_output(decision: av.Decision) -> dict[str, Any]:
    """The fields every refusal of the rules carries to the model."""
    return {
        "reason": decision.reason,
        "alternatives": [a.to_json() for a in decision.alternatives],
        "message": refusal_message(decision),
    }


def slot_refused(refused: SlotUnavailable) -> ToolResult:
    """make_reservation / change_reservation refused by the rules: words and alternatives."""
    fields = refusal_output(refused.decision)
    output = {"ok": False, "error": "slot_unavailable", **fields}
    event = p.custom_event(p.RESERVATION_FAILED, **{**fields, "reason": "slot_unavailable"})
    return ToolResult(output, event)


def require(args: dict[str, Any], *names: str) -> None:
    missing = {name: "is required" for name in names if args.get(name) in (None, "")}
    if missing:
        raise ToolArgumentsInvalid(missing)


async def check_availability(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    """The engine's answer for one time. Under `availability: always` (the default) every valid
    request is available, as the product owner decided."""
    require(args, "date", "time", "party_size")
    unknown = set(args) - {"date", "time", "party_size"}
    if unknown:
        raise ToolArgumentsInvalid({k: "is not a known argument" for k in sorted(unknown)})
    probe = {
        "reservation_date": args["date"],
        "reservation_time": args["time"],
        "party_size": args["party_size"],
    }
    try:
        slot = validate_slot(probe, today=await restaurant.today(ctx.pool, ctx.settings))
    except RequestInvalid as exc:
        raise ToolArgumentsInvalid(model_fields(exc.fields)) from None
    asked = av.Request(slot.reservation_date, slot.reservation_time, slot.party_size)
    decision = await seating.check(ctx.pool, asked, dt.datetime.now(dt.UTC))
    said = {"date": args["date"], "time": args["time"], "party_size": args["party_size"]}
    answer: dict[str, Any] = {"available": decision.available, "reason": None, "alternatives": []}
    if not decision.available:
        answer = {"available": False, **refusal_output(decision)}
    if decision.request:
        answer["message"] = (
            f"A party of {slot.party_size} is booked as a request: make_reservation records it "
            "and the restaurant confirms it."
        )
    output = {"ok": True, **answer, **said}
    event = p.custom_event(p.AVAILABILITY_CHECKED, **answer, **said)
    return ToolResult(output, event)


CHECK_AVAILABILITY = Tool(
    "check_availability",
    "Check whether a table is free for a date, time and party size. When it is not, the answer "
    "says why and offers up to three alternatives to suggest.",
    {
        "type": "object",
        "properties": {"date": DATE, "time": TIME, "party_size": PARTY},
        "required": ["date", "time", "party_size"],
        "additionalProperties": False,
    },
    check_availability,
)
