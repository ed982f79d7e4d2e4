"""The model's session settings, built once for every transport.

The relay's `session.update` (page, SDK, Twilio) and the SIP `accept` take their settings from
`session_config`. Today's date and weekday are written into the instructions, in the restaurant's
timezone, so the model can turn "tomorrow" or "next Friday" into a date without asking. On a
phone line the host also knows the caller's number (from caller ID) and that digits typed on the
keypad arrive as text. With `availability: rules` the restaurant's profile (cached per process,
`ProfileCache`) adds the opening hours, the closures and whether it is open today.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocol import realtime as p
from server.book.restaurant import WEEKDAYS, RestaurantProfile
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


DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CLOSURES_SHOWN = 10  # the next ones; a long list would crowd out the rest of the instructions


def _windows(windows: list[tuple[dt.time, dt.time]]) -> str:
    return ", ".join(f"{start:%H:%M}-{end:%H:%M}" for start, end in windows) or "closed"


def hours_instructions(profile: RestaurantProfile, now: dt.datetime) -> str:
    """The rules a caller may be told, in lines the offline model also reads back: one per
    weekday, one per upcoming closure, and whether the restaurant is open today."""
    local = now.astimezone(profile.zone)
    today = local.date()
    week = "\n".join(
        f"- {name}: {_windows(profile.hours[key])}"
        for name, key in zip(DAY_NAMES, WEEKDAYS, strict=True)
    )
    upcoming = [c for c in profile.closures if c.end >= today][:CLOSURES_SHOWN]
    closures = "".join(
        f"\nClosed all day: {c.start.isoformat()} to {c.end.isoformat()}"
        + (f" ({c.reason})" if c.reason else "")
        for c in upcoming
    )
    closure = profile.closure(today)
    if closure is not None:
        status = f"closed today ({closure.reason or 'closure'})"
    elif profile.windows(today):
        status = f"open today: arrivals {_windows(profile.windows(today))}"
    else:
        status = "closed today"
    return f"""

Opening hours (the times a party may arrive, {profile.timezone}):
{week}{closures}
Today is {today.isoformat()} and the restaurant is {status}.
- Before offering a time, call check_availability. If it answers available false, tell the
  caller why in plain words (closed that day, outside the hours, fully booked...) and offer its
  alternatives; never book a time it refused.
- If make_reservation or change_reservation refuses a time, say why and offer the alternatives
  it gives.
- Parties of more than {profile.max_party_size} are requests that the staff confirm: book them
  with make_reservation and tell the caller the restaurant will confirm."""


def phone_instructions(caller: str | None) -> str:
    known = (
        f"The caller's number, from caller ID, is {caller}: offer to book under it, and use it "
        "to find their booking, unless they give another."
        if caller
        else "The caller's number is not known: ask for it."
    )
    return f"""

This is a phone call. {known}
- Read phone numbers and confirmation numbers back one digit or character at a time.
- The caller may type digits on the keypad; they reach you as a message saying so.
- When the caller has what they need, say a short goodbye and call end_call."""


PCM16 = {"type": "audio/pcm", "rate": p.PCM16_RATE}
PCMU = {"type": "audio/pcmu"}  # G.711 μ-law, 8 kHz: what phone carriers send and play


def session_config(
    settings: Settings,
    tools: list[dict[str, Any]],
    *,
    phone: bool = False,
    caller: str | None = None,
    audio_format: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    profile: RestaurantProfile | None = None,
) -> dict[str, Any]:
    """The `session` object: instructions, voice, turn detection, transcription, tools.

    `audio_format` None leaves the formats out (the SIP sideband: the call's codec is the SIP
    side's); otherwise it applies to input and output alike.
    """
    now = now or dt.datetime.now(settings.timezone)
    name = profile.name if profile is not None else settings.restaurant_name
    instructions = host_instructions(name, now)
    if profile is not None and profile.rules:
        instructions += hours_instructions(profile, now)
    if phone:
        instructions += phone_instructions(caller)
    audio_in: dict[str, Any] = {
        # The caller's words as text: for the page's transcript, and for replaying the
        # conversation into a fresh model session after a reconnect.
        "transcription": {"model": TRANSCRIPTION_MODEL},
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
            "create_response": True,
            "interrupt_response": True,
        },
    }
    audio_out: dict[str, Any] = {"voice": settings.realtime_voice}
    if audio_format is not None:
        audio_in = {"format": audio_format, **audio_in}
        audio_out = {"format": audio_format, **audio_out}
    return {
        "type": "realtime",
        "model": settings.realtime_model,
        "instructions": instructions,
        "output_modalities": ["audio"],
        "audio": {"input": audio_in, "output": audio_out},
        "tools": tools,
        "tool_choice": "auto",
    }


def session_update(
    settings: Settings,
    tools: list[dict[str, Any]],
    now: dt.datetime | None = None,
    *,
    phone: bool = False,
    caller: str | None = None,
    audio_format: dict[str, Any] | None = PCM16,
    profile: RestaurantProfile | None = None,
) -> dict[str, Any]:
    """The server's `session.update` event for a relayed call."""
    return {
        "type": p.SESSION_UPDATE,
        "event_id": p.event_id("relay"),
        "session": session_config(
            settings,
            tools,
            phone=phone,
            caller=caller,
            audio_format=audio_format,
            now=now,
            profile=profile,
        ),
    }
