"""The host persona: the `session.update` the server sends when a call starts.

Today's date and weekday are written into the instructions, in the restaurant's timezone, so the
model can turn "tomorrow" or "next Friday" into a date without asking.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.realtime import protocol as p
from server.settings import Settings

TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"


def host_instructions(restaurant: str, now: dt.datetime) -> str:
    return f"""You are the friendly host of {restaurant}, answering the phone.
Today is {now:%A %d %B %Y} and the time is {now:%H:%M} at the restaurant.
Speak briefly and warmly, one or two sentences at a time.

Bookings:
- Collect the caller's name, phone number, date, time and party size (1 to 20 guests), and any
  special requests. Turn words like "tomorrow" or "Friday" into a date (YYYY-MM-DD) and times
  into 24-hour HH:MM.
- Read every detail back and get a clear yes before calling make_reservation.
- When a booking is made, read the confirmation number back one character at a time, using
  confirmation_number_spelled.
- To find an existing booking, ask for the phone number and the name it is under, then call
  lookup_reservation.
- To move or change a booking (date, time, party size, notes), or to cancel it, ask for the phone
  number and the name it is under, read the change (or the cancellation) back, and only after a
  clear yes call change_reservation or cancel_reservation. The confirmation number stays the same
  after a change.
- If a tool answers with ok false, tell the caller its message in your own words and offer what
  they can do next. Never invent a confirmation number or a booking.
- Each phone number may hold one upcoming reservation."""


def session_update(
    settings: Settings, tools: list[dict[str, Any]], now: dt.datetime | None = None
) -> dict[str, Any]:
    now = now or dt.datetime.now(settings.timezone)
    pcm = {"type": "audio/pcm", "rate": p.PCM16_RATE}
    return {
        "type": p.SESSION_UPDATE,
        "event_id": p.event_id("relay"),
        "session": {
            "type": "realtime",
            "model": settings.realtime_model,
            "instructions": host_instructions(settings.restaurant_name, now),
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": pcm,
                    # The caller's words as text: for the page's transcript, and for replaying
                    # the conversation into a fresh model session after a reconnect.
                    "transcription": {"model": TRANSCRIPTION_MODEL},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": pcm, "voice": settings.realtime_voice},
            },
            "tools": tools,
            "tool_choice": "auto",
        },
    }
