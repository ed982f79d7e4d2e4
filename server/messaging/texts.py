"""What the guest reads: one short text per booking event, and the reminders.

Rendered from the booking as the outbox row recorded it (so a text describes its own event, not
a later state), once, when a sender first claims the row; retries send the same words. Kept well
under one SMS segment where possible, and always under Twilio's 1,600-character limit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.access import manage_links
from server.book.outbox import Message

MAX_BODY = 1600
OPT_OUT_HINT = "Reply STOP to opt out."


def manage_url(base: str, key: bytes, booking: dict[str, Any], reservation_id: int) -> str:
    token = manage_links.mint(key, reservation_id, str(booking.get("confirmation_number", "")))
    return f"{base}/r/{token}"


def _when(booking: dict[str, Any]) -> str:
    day = dt.date.fromisoformat(booking["reservation_date"])
    return f"{day:%a} {day.day} {day:%b} at {booking['reservation_time']}"


def _table(booking: dict[str, Any]) -> str:
    party = int(booking["party_size"])
    return f"{party} {'guest' if party == 1 else 'guests'} on {_when(booking)}"


def _reminder_lead(before: dt.timedelta | None) -> str:
    if before is None:
        return "soon"
    minutes = int(before.total_seconds() // 60)
    if minutes % 1440 == 0:
        days = minutes // 1440
        return "tomorrow" if days == 1 else f"in {days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"in {hours} hour{'s' if hours != 1 else ''}"
    return f"in {minutes} minutes"


def render(message: Message, restaurant: str, link: str) -> str:
    """The body of `message`'s text; `link` is the booking's manage link."""
    booking, previous = message.booking, message.previous or {}
    code = booking.get("confirmation_number", "")
    kind = message.kind
    if kind == "request":
        text = (
            f"{restaurant}: we received your request for {_table(booking)}. We will text you"
            f" when it is confirmed. Ref {code}. Details: {link} {OPT_OUT_HINT}"
        )
    elif kind == "confirmation" and message.event == "confirmed":
        text = (
            f"{restaurant}: your request is confirmed: {_table(booking)}."
            f" Confirmation {code}. Change or cancel: {link}"
        )
    elif kind == "confirmation":
        text = (
            f"{restaurant}: you're booked for {_table(booking)}. Confirmation {code}."
            f" Change or cancel: {link} {OPT_OUT_HINT}"
        )
    elif kind == "change":
        changed = previous and _table(previous) != _table(booking)
        was = f" (was {_table(previous)})" if changed else ""
        text = (
            f"{restaurant}: your booking is now for {_table(booking)}{was}."
            f" Confirmation {code}. Change or cancel: {link}"
        )
    elif kind == "cancellation" and message.event == "declined" and message.source == "guest":
        text = (
            f"{restaurant}: your request for {_table(booking)} (ref {code}) is withdrawn,"
            " as you asked. We hope to see you another time."
        )
    elif kind == "cancellation" and message.event == "declined":
        text = (
            f"{restaurant}: sorry, we cannot take your request for {_table(booking)} (ref {code})."
            " Please call us to find another time."
        )
    elif kind == "cancellation":
        text = (
            f"{restaurant}: your booking for {_table(booking)} ({code}) is cancelled."
            " We hope to see you another time."
        )
    else:  # reminder
        text = (
            f"{restaurant}: see you {_reminder_lead(message.remind_before)}!"
            f" Your table for {_table(booking)}. Confirmation {code}. Change or cancel: {link}"
        )
    return text[:MAX_BODY]


def help_reply(restaurant: str, phone: str | None) -> str:
    """The answer to HELP (or INFO)."""
    call = f" Call us on {phone}." if phone else ""
    return f"{restaurant}: texts about your booking.{call} Reply STOP to opt out, START to opt in."
