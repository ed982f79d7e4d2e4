"""Opening hours as the instructions state them, and the answer to "are you open on Monday?".

The offline model knows only what its session's instructions say (it imports nothing of the
server). The server writes one line per weekday ("- Monday: closed", "- Tuesday: 12:00-14:00,
18:00-21:30") and one per closure ("Closed all day: 2026-12-24 to 2026-12-26 (Christmas)");
instructions without them (a restaurant that takes any time) get a plain invitation instead.
Pure functions of text, so they are tested without a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_LINE = re.compile(r"^- (" + "|".join(DAYS) + r"): (.+)$", re.M)
_CLOSURE = re.compile(
    r"^Closed all day: (\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})(?: \((.*)\))?$", re.M
)
ANY_TIME = "We take bookings any day — which date and time would you like?"


@dataclass(frozen=True)
class Hours:
    week: dict[str, str]  # "Tuesday" -> "12:00-14:00, 18:00-21:30" | "closed"
    closures: list[tuple[date, date, str]]


def read_hours(instructions: str) -> Hours | None:
    """The hours the instructions state, or None when they state none."""
    week = {match[1]: match[2].strip() for match in _DAY_LINE.finditer(instructions)}
    if len(week) != len(DAYS):
        return None
    closures = []
    for match in _CLOSURE.finditer(instructions):
        try:
            closures.append((date.fromisoformat(match[1]), date.fromisoformat(match[2]), match[3]))
        except ValueError:
            continue
    return Hours(week, closures)


def open_answer(instructions: str, day: str | None, speak_date: str | None) -> str:
    """ "Are you open on Monday?" answered from the instructions; `day` is ISO (or None for the
    whole week), `speak_date` how that day is said."""
    hours = read_hours(instructions)
    if hours is None:
        return ANY_TIME
    if day is None:
        open_days = [f"{name} {hours.week[name]}" for name in DAYS if hours.week[name] != "closed"]
        closed = [name for name in DAYS if hours.week[name] == "closed"]
        sentence = "We take arrivals " + "; ".join(open_days) + "."
        if closed:
            sentence += f" We're closed on {' and '.join(closed)}."
        return sentence
    when = date.fromisoformat(day)
    said = speak_date or day
    for start, end, reason in hours.closures:
        if start <= when <= end:
            why = f" for {reason}" if reason else ""
            return f"Sorry, we're closed on {said}{why}. Would another day suit you?"
    windows = hours.week[DAYS[when.weekday()]]
    if windows == "closed":
        return f"Sorry, we're closed on {said}. Would another day suit you?"
    return f"Yes, we're open on {said}: you can arrive {windows}. Shall I book a table?"
