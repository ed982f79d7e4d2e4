"""What the offline agent says or calls next, given the slots gathered so far and tool results.

A real model decides this from the instructions and tool schemas; the offline one follows a
fixed script that exercises the same tool-call loop: ask for what is missing, call the tool when
everything is known, and turn the tool's JSON output back into a sentence. Pure functions over a
small mutable ``Slots`` record, so dialogs can be tested without a socket.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from . import readback
from .hours import open_answer
from .intents import Parsed

GREETING = "Hello! I can book a table, check availability or look up a reservation. How can I help?"
WHAT_TO_DO = (
    "I can book a table, check availability or look up a reservation — what would you like to do?"
)
AUDIO_REPLY = "I heard you — in offline mode please type your request."
ANYTHING_ELSE = "Is there anything else I can help you with?"

# What each intent needs before its tool can be called, in the order we ask for it.
REQUIRED: dict[str, tuple[str, ...]] = {
    "book": ("date", "time", "party_size", "name", "phone"),
    "availability": ("date", "time", "party_size"),
    "lookup": ("name", "phone"),
    "change": ("name", "phone"),
    "cancel": ("name", "phone"),
    "transfer": (),
    "end": (),
    "hours": (),  # answered from the instructions: no tool
}
TOOL_FOR = {
    "book": "make_reservation",
    "availability": "check_availability",
    "lookup": "lookup_reservation",
    "change": "change_reservation",
    "cancel": "cancel_reservation",
    "transfer": "transfer_call",  # phone calls only: the page's sessions do not offer these
    "end": "end_call",
}
# A change needs at least one of these; it and a cancellation are read back and need a yes.
CHANGES = ("date", "time", "party_size", "notes")
WHAT_TO_CHANGE = "What would you like to change: the date, the time or the number of people?"
KEPT = "All right, I have left your booking as it was."
GOODBYE = "Thank you for calling. Goodbye!"
TRANSFERRING = "One moment, I'm transferring you to a member of our team now."
QUESTIONS: dict[str, dict[str, str]] = {
    "book": {
        "date": "which date would you like",
        "time": "what time",
        "party_size": "how many people",
        "name": "what name should I put the booking under",
        "phone": "what phone number",
    },
    "availability": {
        "date": "which date should I check",
        "time": "what time",
        "party_size": "for how many people",
    },
    "lookup": {
        "name": "what name is the booking under",
        "phone": "what phone number did you book with",
    },
}
QUESTIONS["change"] = QUESTIONS["cancel"] = QUESTIONS["lookup"]


@dataclass
class Slots:
    """Everything the caller has told us in this session; later mentions overwrite earlier ones."""

    intent: str | None = None
    name: str | None = None
    phone: str | None = None
    date: str | None = None
    time: str | None = None
    party_size: int | None = None
    notes: str | None = None
    answer: str | None = None  # "yes" / "no" said in the latest turn only
    # Spoken calls: the name and number were heard, not typed, so the host reads them back and
    # books only after a "yes" (``confirmed``); ``corrected``: the turn changed one of them.
    spoken: bool = False
    confirmed: bool = False
    corrected: bool = False

    def absorb(self, parsed: Parsed) -> None:
        # A booking still being made is amended, not "changed" ("make it 6 people").
        amending = self.intent == "book" and parsed.intent == "change"
        before = (self.name, self.phone)
        for field in fields(parsed):
            value = getattr(parsed, field.name)
            if value is not None and not (amending and field.name == "intent"):
                setattr(self, field.name, value)
        self.answer = parsed.answer  # a yes counts for the question just asked, never later
        self.corrected = (self.name, self.phone) != before
        if self.corrected:
            self.confirmed = False

    def forget_booking(self) -> None:
        """After a booking the caller is still the same person, but the next table is new."""
        self.intent = self.date = self.time = self.party_size = self.notes = None
        self.confirmed = False


@dataclass(frozen=True)
class Say:
    text: str
    listen: str = "general"  # what the caller is asked for: ``grammars.Listen``


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]


def decide(slots: Slots, tools: Collection[str], instructions: str = "") -> Say | Call:
    """The next step for a text turn: a question, a tool call, or (without the tool) words.
    "Are you open on Monday?" is answered from the hours the instructions state."""
    intent = slots.intent
    if intent is None:
        return Say(WHAT_TO_DO)
    if intent == "hours":
        slots.intent = None
        said = speak_date(slots.date) if slots.date else None
        return Say(open_answer(instructions, slots.date, said))
    missing = [slot for slot in REQUIRED[intent] if getattr(slots, slot) is None]
    if missing and slots.spoken:  # heard, not typed: one question per answer the ear expects
        first = [slot for slot in missing if slot not in readback.LISTEN_FOR] or missing[:1]
        return Say(ask(intent, first), readback.LISTEN_FOR.get(first[0], "general"))
    if missing:
        return Say(ask(intent, missing))
    if intent == "book" and slots.spoken and not slots.confirmed:
        if slots.answer == "yes" and not slots.corrected:
            slots.confirmed = True
        elif slots.answer == "no" and not slots.corrected:
            return Say(readback.WHAT_IS_RIGHT, "confirm")
        else:
            when = f"{speak_date(slots.date)} at {speak_time(slots.time)}"
            said = readback.booking(slots.party_size, when, slots.name, slots.phone)
            return Say(said, "confirm")
    if intent == "change" and all(getattr(slots, slot) is None for slot in CHANGES):
        return Say(WHAT_TO_CHANGE)
    if intent in ("change", "cancel") and slots.answer != "yes":
        if slots.answer == "no":
            slots.forget_booking()
            return Say(KEPT)
        return Say(read_back(intent, slots))  # the host gets a yes before it changes anything
    tool = TOOL_FOR[intent]
    arguments = tool_arguments(tool, slots)
    if tool in tools:
        return Call(tool, arguments)
    return Say(without_tool(intent, slots))


def ask(intent: str, missing: list[str]) -> str:
    """One question for every missing slot: "What name …, and what phone number?"."""
    parts = [QUESTIONS[intent][slot] for slot in missing]
    sentence = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    return sentence[0].upper() + sentence[1:] + "?"


def read_back(intent: str, slots: Slots) -> str:
    """ "To confirm: move the booking under Ada to 8 pm. Shall I go ahead?" """
    if intent == "cancel":
        return f"To confirm: cancel the booking under {slots.name} for {slots.phone}. Shall I?"
    parts = []
    if slots.date:
        parts.append(f"to {speak_date(slots.date)}")
    if slots.time:
        parts.append(f"{'at' if slots.date else 'to'} {speak_time(slots.time)}")
    if slots.party_size:
        parts.append(f"for {slots.party_size} people")
    if slots.notes:
        parts.append(f"with the note {slots.notes!r}")
    return f"To confirm: change the booking under {slots.name} {' '.join(parts)}. Shall I go ahead?"


def tool_arguments(tool: str, slots: Slots) -> dict[str, Any]:
    """Arguments with our product's names (see the tool schemas the relay registers)."""
    if tool in ("lookup_reservation", "cancel_reservation"):
        return {"phone_number": slots.phone, "name": slots.name}
    if tool == "change_reservation":
        given = {"date": slots.date, "time": slots.time, "party_size": slots.party_size}
        changes = {key: value for key, value in given.items() if value is not None}
        if slots.notes:
            changes["notes"] = slots.notes
        return {"phone_number": slots.phone, "name": slots.name, **changes}
    if tool in ("end_call", "transfer_call"):
        return {"reason": "the caller asked"}
    when = {"date": slots.date, "time": slots.time, "party_size": slots.party_size}
    if tool == "check_availability":
        return when
    arguments = {"name": slots.name, "phone_number": slots.phone, **when}
    if slots.notes:
        arguments["notes"] = slots.notes
    return arguments


def without_tool(intent: str, slots: Slots) -> str:
    table = (
        f"a table for {slots.party_size} on {speak_date(slots.date)} at {speak_time(slots.time)}"
    )
    if intent in ("end", "transfer"):
        slots.intent = None  # said once; the caller's next words start afresh
    if intent == "end":
        return GOODBYE
    if intent == "transfer":
        return "I'm sorry, I can't transfer calls here, but I'm happy to help you myself."
    if intent in ("lookup", "change", "cancel"):
        return f"I can't reach the reservations right now, {slots.name}. Please try again later."
    if intent == "availability":
        return f"I can't check availability right now for {table}. Please try again later."
    return f"I have {table} under {slots.name}, but I can't make bookings right now."


# --- tool output -> words ------------------------------------------------------------------


def answer(call: Call, output: str, slots: Slots) -> str:
    """Say the result of ``call``; also moves the dialog on (e.g. a booked table is forgotten)."""
    data = _loads(output)
    if not isinstance(data, dict):
        return str(data) if data not in (None, "") else "Done."
    if data.get("error") == "slot_unavailable":
        slots.date = slots.time = None  # the caller picks another: the booking goes on
        return _refused(data)
    if (problem := error_message(data)) is not None:
        return problem
    if call.name == "make_reservation":
        slots.forget_booking()
        return _booked(call.arguments, data)
    if call.name == "check_availability":
        return _availability(call.arguments, data, slots)
    if call.name == "lookup_reservation":
        slots.intent = None
        return _found(call.arguments, data)
    if call.name in ("change_reservation", "cancel_reservation"):
        slots.forget_booking()
        return _changed(data)
    if call.name in ("end_call", "transfer_call"):
        slots.intent = None
        return GOODBYE if call.name == "end_call" else TRANSFERRING
    return str(data.get("message") or "Done.")


def _loads(output: str) -> Any:
    try:
        return json.loads(output)
    except ValueError:
        return output


def error_message(data: dict[str, Any]) -> str | None:
    """The words of an error output: ``{"error": {"message": …}}`` or ``{"ok": false, …}``."""
    error = data.get("error")
    failed = data.get("ok") is False or data.get("success") is False
    failed = failed or data.get("status") in ("error", "failed")
    if not error and not failed:
        return None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if data.get("message"):
        return str(data["message"])
    if isinstance(error, str):
        return error
    return "Sorry, something went wrong."


def _confirmation(data: dict[str, Any]) -> str | None:
    for source in (data, data.get("reservation")):
        if not isinstance(source, dict):
            continue
        for key in (
            "confirmation_number_spelled",
            "confirmation_number",
            "confirmation_code",
            "confirmation",
            "code",
        ):
            value = source.get(key)
            if isinstance(value, str | int) and str(value).strip():
                return str(value)
    return None


def spell(code: str) -> str:
    """Confirmation codes are read character by character: "ABC-234" → "A B C 2 3 4"."""
    return " ".join(ch for ch in code.upper() if ch.isalnum())


def _when(details: dict[str, Any]) -> str:
    """Our tools say ``reservation_date``/``reservation_time``; tool arguments say date/time."""
    day = details.get("reservation_date") or details.get("date")
    clock = details.get("reservation_time") or details.get("time")
    return f"on {speak_date(day)} at {speak_time(clock)}"


def _booked(arguments: dict[str, Any], data: dict[str, Any]) -> str:
    reservation = data.get("reservation")
    details = {**arguments, **(reservation if isinstance(reservation, dict) else {})}
    table = f"a table for {details.get('party_size')} {_when(details)}"
    sentence = f"You're booked, {details.get('name')}: {table}."
    if data.get("status") == "requested":
        sentence = f"I've sent your request for {table}: the restaurant will confirm it."
    if code := _confirmation(data):
        sentence += f" Your confirmation number is {spell(code)}."
    return sentence


def _availability(arguments: dict[str, Any], data: dict[str, Any], slots: Slots) -> str:
    when = f"{speak_time(arguments.get('time'))} on {speak_date(arguments.get('date'))}"
    if data.get("available"):
        slots.intent = "book"
        return f"Good news: {when} is available for {arguments.get('party_size')}. Shall I book it?"
    if data.get("reason") == "party_too_large":
        slots.intent = "book"
        party = arguments.get("party_size")
        return f"A party of {party} is a request the restaurant confirms. Shall I send it?"
    slots.time = None
    if data.get("reason") in REASONS:
        slots.date = None
        return _refused(data, when)
    alternatives = _alternatives(data, arguments.get("date"))
    if alternatives:
        return f"Sorry, {when} is taken. I could offer {', '.join(alternatives[:3])}."
    return f"Sorry, {when} is not available. Would another time work?"


# Why a time was refused, as the host says it (the server's `reason`s).
REASONS = {
    "closed": "we're closed that day",
    "outside_hours": "we don't seat guests at that time",
    "full": "we're fully booked then",
    "too_soon": "that's too short notice",
    "too_far": "we don't take bookings that far ahead yet",
    "in_the_past": "that time has already passed",
    "party_too_large": "a party that size needs the restaurant to confirm",
}


def _alternatives(data: dict[str, Any], asked_date: Any) -> list[str]:
    """The offered times, with their day when it is not the day asked about."""
    said = []
    for key in ("alternatives", "alternative_times", "suggested_times"):
        for offered in data.get(key) or []:
            if not isinstance(offered, dict):
                said.append(speak_time(offered))
            elif offered.get("date") in (None, asked_date):
                said.append(speak_time(offered.get("time")))
            else:
                said.append(f"{speak_date(offered['date'])} at {speak_time(offered.get('time'))}")
    return said


def _refused(data: dict[str, Any], when: str = "that time") -> str:
    """A refusal by the restaurant's rules: why, and the alternatives it carries."""
    why = REASONS.get(str(data.get("reason")), f"{when} is not available")
    offered = _alternatives(data, None)
    if not offered:
        return f"Sorry, {why}. Would another day or time work?"
    listed = offered[0] if len(offered) == 1 else ", ".join(offered[:-1]) + " or " + offered[-1]
    return f"Sorry, {why}. I could offer {listed}. Which would you like?"


def _found(arguments: dict[str, Any], data: dict[str, Any]) -> str:
    found = data.get("reservation")
    listed = data.get("reservations")
    if not found and isinstance(listed, list) and listed:
        found = listed[0]
    if not found and data.get("found") and ("date" in data or "reservation_date" in data):
        found = data
    if not isinstance(found, dict) or data.get("found") is False:
        if data.get("message"):
            return str(data["message"])
        return f"I couldn't find a reservation for {arguments.get('name')} with that phone number."
    sentence = (
        f"I found your reservation, {found.get('name') or arguments.get('name')}: a table for "
        f"{found.get('party_size')} {_when(found)}."
    )
    if code := _confirmation(found) or _confirmation(data):
        sentence += f" The confirmation number is {spell(code)}."
    return sentence


def _changed(data: dict[str, Any]) -> str:
    found = data.get("reservation")
    if not isinstance(found, dict) or data.get("found") is False:
        return str(data.get("message") or "I couldn't find that booking.")
    table = f"a table for {found.get('party_size')} {_when(found)}"
    if data.get("status") == "cancelled":
        return f"Your booking for {table} is cancelled, {found.get('name')}."
    if data.get("status") == "unchanged":
        return f"Your booking already says that: {table}."
    sentence = f"Done, {found.get('name')}: your booking is now {table}."
    if code := _confirmation(data):
        sentence += f" Your confirmation number stays {spell(code)}."
    return sentence


# --- speaking dates and times --------------------------------------------------------------


def speak_date(value: Any) -> str:
    """ "2026-12-03" → "Thursday, December 3"; anything unparsable is said as given."""
    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return f"{day:%A}, {day:%B} {day.day}"


def speak_time(value: Any) -> str:
    """ "19:30" → "7:30 pm", "12:00" → "12 pm"."""
    try:
        hour, minute = (int(part) for part in str(value).split(":")[:2])
    except ValueError:
        return str(value)
    suffix = "am" if hour < 12 else "pm"
    hour12 = hour % 12 or 12
    return f"{hour12} {suffix}" if minute == 0 else f"{hour12}:{minute:02d} {suffix}"
