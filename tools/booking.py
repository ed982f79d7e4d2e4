"""The model's booking tools, schemas beside their handlers: make_reservation,
lookup_reservation, change_reservation and cancel_reservation (check_availability and the words
of a refusal are in `tools.availability`).

They go through the same `server.models` rules and `server.reservations` SQL as the REST API, so
a booking made by voice and one made over HTTP cannot disagree.
"""

from __future__ import annotations

from typing import Any

from rapidfuzz import fuzz

from protocol import realtime as p
from server.book import reservations, restaurant
from server.book.models import (
    InvalidPhoneNumber,
    RequestInvalid,
    normalize_phone,
    validate_change,
    validate_request,
)
from tools.availability import (
    CHECK_AVAILABILITY,
    DATE,
    PARTY,
    TIME,
    model_fields,
    require,
    slot_refused,
    speak_date,
)
from tools.registry import Tool, ToolArgumentsInvalid, ToolContext, ToolResult, failure

NAME_MATCH_THRESHOLD = 80  # out of 100; survives "Lovelase" for "Lovelace", not "Alan" for "Ada"

_PHONE = {
    "type": "string",
    "description": "The caller's phone number as they said it, digits with optional +country code.",
}
_NAME = {"type": "string", "description": "The name the booking is under."}


def spell(code: str) -> str:
    """ "ABC234" -> "A B C 2 3 4": how the confirmation number should be read out."""
    return " ".join(code)


# --- make_reservation -------------------------------------------------------------------------


async def make_reservation(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    require(args, "name", "phone_number", "date", "time", "party_size")
    notes = args.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise ToolArgumentsInvalid({"notes": "must be text"})
    unknown = set(args) - {"name", "phone_number", "date", "time", "party_size", "notes"}
    if unknown:
        raise ToolArgumentsInvalid({k: "is not a known argument" for k in sorted(unknown)})
    body = {
        "name": args["name"],
        "phone_number": args["phone_number"],
        "reservation_date": args["date"],
        "reservation_time": args["time"],
        "party_size": args["party_size"],
        "other_info": {"notes": notes.strip()} if notes and notes.strip() else {},
    }
    today = await restaurant.today(ctx.pool, ctx.settings)
    try:
        request = validate_request(body, region=ctx.settings.default_region, today=today)
    except RequestInvalid as exc:
        raise ToolArgumentsInvalid(model_fields(exc.fields)) from None

    try:
        result = await reservations.book(ctx.pool, request, today, ctx.origin)
    except reservations.SlotUnavailable as refused:
        return slot_refused(refused)
    held = result.reservation
    if result.outcome == "conflict":
        return failure(
            "reservation_exists",
            f"This phone number already has a reservation on {speak_date(held.reservation_date)}"
            f" at {held.reservation_time:%H:%M}. Only one upcoming booking is allowed per number.",
            existing={
                "date": held.reservation_date.isoformat(),
                "time": f"{held.reservation_time:%H:%M}",
            },
        )
    code = held.confirmation_number
    reservation = held.to_json()
    requested = held.status == "requested"
    output = {
        "ok": True,
        "status": "already_booked" if result.outcome != "created" else held.status,
        "confirmation_number": code,
        "confirmation_number_spelled": spell(code),
        "reservation": reservation,
    }
    if requested:
        output["message"] = (
            f"A party of {held.party_size} is a request, not yet a booking: the restaurant will "
            "call back to confirm it. Give the caller the reference number."
        )
    event = p.custom_event(
        p.RESERVATION_REQUESTED if requested else p.RESERVATION_CONFIRMED,
        reservation=reservation,
        confirmation_number=code,
        repeated=result.outcome == "repeated",
    )
    return ToolResult(output, event)


# --- lookup_reservation -----------------------------------------------------------------------


def names_match(said: str, on_booking: str) -> bool:
    """Fuzzy, to survive transcription ("Ada Lovelase", "ada"), but not a different person."""
    said, on_booking = said.casefold().strip(), on_booking.casefold().strip()
    if sum(ch.isalpha() for ch in said) < 2:
        return False
    squeezed = fuzz.ratio(said.replace(" ", ""), on_booking.replace(" ", ""))
    return max(fuzz.token_set_ratio(said, on_booking), squeezed) >= NAME_MATCH_THRESHOLD


def _caller(args: dict[str, Any], ctx: ToolContext, allowed: set[str]) -> str:
    """Check the phone and name every guarded tool needs; returns the phone in E.164."""
    require(args, "phone_number", "name")
    unknown = set(args) - allowed
    if unknown:
        raise ToolArgumentsInvalid({k: "is not a known argument" for k in sorted(unknown)})
    if not isinstance(args["name"], str):
        raise ToolArgumentsInvalid({"name": "must be text"})
    if not isinstance(args["phone_number"], str):
        raise ToolArgumentsInvalid({"phone_number": "must be text"})
    try:
        return normalize_phone(args["phone_number"], ctx.settings.default_region)
    except InvalidPhoneNumber as exc:
        raise ToolArgumentsInvalid({"phone_number": str(exc)}) from None


def _not_found() -> ToolResult:
    """A wrong name gets exactly the answer of no booking: a phone number alone reveals nothing."""
    message = "I could not find a reservation for that phone number and name."
    output = {"ok": True, "found": False, "message": message}
    return ToolResult(output, p.custom_event(p.RESERVATION_NOT_FOUND, message=message))


async def lookup_reservation(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    phone = _caller(args, ctx, {"phone_number", "name"})
    found = await reservations.find(ctx.pool, phone)
    if found is None or not names_match(args["name"], found.name):
        return _not_found()
    reservation = found.to_json()
    output = {
        "ok": True,
        "found": True,
        "confirmation_number_spelled": spell(found.confirmation_number),
        "reservation": reservation,
    }
    event = p.custom_event(
        p.RESERVATION_FOUND,
        reservation=reservation,
        confirmation_number=found.confirmation_number,
    )
    return ToolResult(output, event)


# --- change_reservation -------------------------------------------------------------------------

_CHANGE_ARGS = {"phone_number", "name", "date", "time", "party_size", "notes"}


async def change_reservation(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    phone = _caller(args, ctx, _CHANGE_ARGS)
    # Arguments the model left out (or sent empty) are not changes.
    given = {"date": "reservation_date", "time": "reservation_time", "party_size": "party_size"}
    body = {col: args[name] for name, col in given.items() if args.get(name) not in (None, "")}
    notes = args.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise ToolArgumentsInvalid({"notes": "must be text"})
    if notes is not None:
        body["other_info"] = {"notes": notes.strip()}
    if not body:
        raise ToolArgumentsInvalid(
            {"changes": "say what to change: date, time, party size or notes"}
        )
    today = await restaurant.today(ctx.pool, ctx.settings)
    try:
        changes = validate_change(body, today=today)
    except RequestInvalid as exc:
        raise ToolArgumentsInvalid(model_fields(exc.fields)) from None

    def merged(before: reservations.Reservation) -> dict[str, Any]:
        """New notes join the booking's other details instead of replacing them."""
        if "other_info" not in changes:
            return changes
        other = {k: v for k, v in before.other_info.items() if k != "notes"}
        if changes["other_info"]["notes"]:
            other["notes"] = changes["other_info"]["notes"]
        return {**changes, "other_info": other}

    try:
        result = await reservations.change(
            ctx.pool,
            phone,
            merged,
            today,
            ctx.origin,
            guard=lambda held: names_match(args["name"], held.name),
        )
    except reservations.SlotUnavailable as refused:
        return slot_refused(refused)
    if result.reservation is None or result.before is None:
        return _not_found()
    after, before = result.reservation, result.before
    code = after.confirmation_number
    output = {
        "ok": True,
        "status": result.outcome,  # "changed" | "unchanged"
        "confirmation_number_spelled": spell(code),
        "reservation": after.to_json(),
        "previous": before.to_json(),
    }
    event = p.custom_event(
        p.RESERVATION_CHANGED,
        reservation=after.to_json(),
        previous=before.to_json(),
        confirmation_number=code,
        changed=result.outcome == "changed",
    )
    return ToolResult(output, event)


# --- cancel_reservation -------------------------------------------------------------------------


async def cancel_reservation(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    phone = _caller(args, ctx, {"phone_number", "name"})
    result = await reservations.cancel(
        ctx.pool,
        phone,
        await restaurant.today(ctx.pool, ctx.settings),
        ctx.origin,
        guard=lambda held: names_match(args["name"], held.name),
    )
    if result.reservation is None:
        return _not_found()
    cancelled = result.reservation
    output = {
        "ok": True,
        "status": "cancelled",
        "confirmation_number_spelled": spell(cancelled.confirmation_number),
        "reservation": cancelled.to_json(),
    }
    event = p.custom_event(
        p.RESERVATION_CANCELLED,
        reservation=cancelled.to_json(),
        confirmation_number=cancelled.confirmation_number,
    )
    return ToolResult(output, event)


BOOKING_TOOLS = [
    CHECK_AVAILABILITY,
    Tool(
        "make_reservation",
        "Book a table once the caller has confirmed every detail. Returns a confirmation "
        "number to read back character by character.",
        {
            "type": "object",
            "properties": {
                "name": _NAME,
                "phone_number": _PHONE,
                "date": DATE,
                "time": TIME,
                "party_size": PARTY,
                "notes": {
                    "type": "string",
                    "description": "Optional requests (allergies, seating).",
                },
            },
            "required": ["name", "phone_number", "date", "time", "party_size"],
            "additionalProperties": False,
        },
        make_reservation,
    ),
    Tool(
        "lookup_reservation",
        "Find the caller's upcoming reservation by phone number and the name it is under.",
        {
            "type": "object",
            "properties": {"phone_number": _PHONE, "name": _NAME},
            "required": ["phone_number", "name"],
            "additionalProperties": False,
        },
        lookup_reservation,
    ),
    Tool(
        "change_reservation",
        "Change the caller's upcoming reservation: date, time, party size or notes. Find it by "
        "phone number and the name it is under; first read the change back and get a clear yes.",
        {
            "type": "object",
            "properties": {
                "phone_number": _PHONE,
                "name": _NAME,
                "date": {**DATE, "description": "The new date, if it changes (YYYY-MM-DD)."},
                "time": {**TIME, "description": "The new time, if it changes (HH:MM, 24-hour)."},
                "party_size": {**PARTY, "description": "The new number of guests, if it changes."},
                "notes": {
                    "type": "string",
                    "description": "New special requests (replacing the old); empty clears them.",
                },
            },
            "required": ["phone_number", "name"],
            "additionalProperties": False,
        },
        change_reservation,
    ),
    Tool(
        "cancel_reservation",
        "Cancel the caller's upcoming reservation, found by phone number and the name it is "
        "under. Confirm with the caller first.",
        {
            "type": "object",
            "properties": {"phone_number": _PHONE, "name": _NAME},
            "required": ["phone_number", "name"],
            "additionalProperties": False,
        },
        cancel_reservation,
    ),
]
