"""OpenAI SIP calls, sans I/O: the webhook's call in, the sideband's events in, actions out.

With SIP the caller's audio never reaches us: OpenAI plays the host's words to the caller and
the sideband carries only events. Two decisions are ours, and both live here, free of sockets
and clocks so that they can be tested alone (`sip_call.py` carries them out):

- Who is calling: the caller's number from the SIP `From` header of `realtime.call.incoming`
  (untrusted call metadata, like any caller ID), for the host's instructions.
- When to end or hand over the call. `end_call` and `transfer_call` raise page events; the host
  then says its last words (the follow-up response). Once that response is done we wait for
  `output_audio_buffer.stopped` (OpenAI's "the caller has heard it all", sent on WebRTC and SIP
  sessions), or for a timeout when it never comes, and only then hang up or refer: hanging up on
  `response.done` would cut the goodbye, which is generated faster than it plays.

It also says when the caller is active (speech started, a turn added), which is what keeps an
audio-less call from looking idle to the core's watchdog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from protocol import realtime as p
from server.realtime.session import peek_type

CALL_INCOMING = "realtime.call.incoming"
PLAYOUT_STOPPED = p.PLAYOUT_STOPPED
PLAYOUT_CLEARED = p.PLAYOUT_CLEARED
BUSY = 486  # SIP "Busy Here": the caller hears busy, the carrier may try elsewhere

_SIP_USER = re.compile(r"(?:sips?|tel):([^@;>\s]+)", re.I)
_PHONE = re.compile(r"\+?\d{5,15}")
_CALLER_SIGNS = (p.SPEECH_STARTED, p.INPUT_TRANSCRIPTION_COMPLETED)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A call OpenAI offers us: its id and what its SIP headers say."""

    call_id: str
    caller: str | None  # the caller's number, when `From` carries one
    to: str | None  # the number dialled


def caller_number(header: str) -> str | None:
    """``"Ann" <sip:+6591234567@carrier;user=phone>;tag=x`` -> ``+6591234567``; else None."""
    match = _SIP_USER.search(header)
    user = (match.group(1) if match else header).strip()
    user = re.sub(r"[\s().\-]", "", user)
    return user if _PHONE.fullmatch(user) else None


def read_incoming(data: Any) -> Incoming | None:
    """The `data` of `realtime.call.incoming`; None when it names no call."""
    if not isinstance(data, dict) or not isinstance(data.get("call_id"), str):
        return None
    headers: dict[str, str] = {}
    for header in data.get("sip_headers") or []:
        if isinstance(header, dict) and isinstance(header.get("value"), str):
            headers.setdefault(str(header.get("name", "")).lower(), header["value"])
    return Incoming(
        call_id=data["call_id"],
        caller=caller_number(headers["from"]) if "from" in headers else None,
        to=caller_number(headers["to"]) if "to" in headers else None,
    )


# -- the call's end, decided from the sideband's events ------------------------------------------


@dataclass(frozen=True, slots=True)
class Hangup:
    """The host's goodbye has played: hang up."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refer:
    """The host's last words before a transfer have played: refer the call to `target_uri`."""

    target_uri: str


@dataclass(frozen=True, slots=True)
class AwaitPlayout:
    """The last words are generated: start the playout timeout for `response_id`."""

    response_id: str


@dataclass(frozen=True, slots=True)
class CallerActive:
    """The caller spoke: the call is not idle."""


Outcome = Hangup | Refer | AwaitPlayout | CallerActive


class SipControl:
    """One SIP call's end-of-call state; feed it every event of the sideband."""

    def __init__(self) -> None:
        self.then: Hangup | Refer | None = None  # what to do after the host's last words
        self.armed = False  # the response carrying the last words has started
        self.waiting: str | None = None  # the response whose playout we wait for

    def from_model(self, text: str) -> list[Outcome]:
        kind = peek_type(text) or _field(text, "type")
        if kind in _CALLER_SIGNS:
            return [CallerActive()]
        if kind == p.ITEM_ADDED:
            return [CallerActive()] if _field(text, "item", "role") == "user" else []
        if kind == p.CALL_END_REQUESTED:
            self._after_last_words(Hangup("host ended the call"))
        elif kind == p.CALL_TRANSFER_REQUESTED:
            number = _field(text, "number")
            if number:
                self._after_last_words(Refer(f"tel:{number}"))
        elif kind == p.RESPONSE_CREATED:
            self.armed = self.then is not None
        elif kind == p.RESPONSE_DONE and self.armed and self.waiting is None:
            self.waiting = _field(text, "response", "id") or ""
            return [AwaitPlayout(self.waiting)]
        elif kind in (PLAYOUT_STOPPED, PLAYOUT_CLEARED) and self.waiting is not None:
            response_id = _field(text, "response_id")
            if not response_id or not self.waiting or response_id == self.waiting:
                return self._act()
        return []

    def playout_timed_out(self, response_id: str) -> list[Outcome]:
        """No `output_audio_buffer.stopped` came in time: act anyway."""
        return self._act() if self.waiting == response_id else []

    def _after_last_words(self, then: Hangup | Refer) -> None:
        """The tool's output makes the host speak once more: act after that response."""
        self.then, self.armed, self.waiting = then, False, None

    def _act(self) -> list[Outcome]:
        then, self.then, self.armed, self.waiting = self.then, None, False, None
        return [then] if then is not None else []


def _field(text: str, *path: str) -> str | None:
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None
