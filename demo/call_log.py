"""What the page demo concludes from the server's events: the lines to print and the verdict.

Pure: no I/O, no clock (times are passed in), so every rule is unit-testable without a socket.
`demo.page` feeds it every event and asks it whether a turn is over and whether the call
succeeded (booked, then found again with the same confirmation number).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from demo.steps import Step
from protocol import realtime as p


def describe(reservation: Any) -> str:
    """``Ada Lovelace  2026-11-26 19:00  party of 4`` from a reservation's JSON."""
    if not isinstance(reservation, dict):
        return ""
    return (
        f"{reservation.get('name')}  {reservation.get('reservation_date')} "
        f"{reservation.get('reservation_time')}  party of {reservation.get('party_size')}"
    )


def _has_function_call(response: dict[str, Any]) -> bool:
    output = response.get("output")
    return isinstance(output, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call" for item in output
    )


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: events come from the network."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _error_text(event: dict[str, Any]) -> str:
    error = _obj(event.get("error"))
    code = error.get("code") or error.get("type") or "error"
    return f"{code}: {error.get('message') or 'no message'}"


@dataclass
class CallLog:
    """What the demo concludes from server events. Pure: no I/O, no clock (times are passed in).

    A turn is over when a response that called no tool is done and none is in progress (a
    response that calls a tool is followed by the relay's own ``response.create`` once the tool
    has answered), and the caller is not speaking. ``failure`` is set by the first event that
    makes success impossible; the I/O loop stops at once when it is set.
    """

    failure: str | None = None
    confirmation: str | None = None  # from reservation.confirmed
    found: str | None = None  # from reservation.found
    stats: dict[str, Any] | None = None  # the latest session.stats
    ready: bool = False  # session.updated seen: the server's configuration is in force
    speech_started: int = 0
    speech_stopped: int = 0
    first_audio_ms: list[float] = field(default_factory=list)  # turn end -> first reply audio
    audio_out_bytes: int = 0
    _in_progress: int = 0
    _final_done: bool = False
    _stats_fresh: bool = False
    _turn_ended_at: float | None = None
    _seen: set[str] = field(default_factory=set)  # custom event types of the current turn

    # -- what the I/O loop asks --------------------------------------------------------------

    @property
    def turn_over(self) -> bool:
        speaking = self.speech_started > self.speech_stopped
        return self._final_done and self._in_progress == 0 and not speaking

    @property
    def stats_fresh(self) -> bool:
        """A session.stats arrived after the last response.done: the figures are final."""
        return self._stats_fresh

    @property
    def succeeded(self) -> bool:
        return (
            self.failure is None
            and self.confirmation is not None
            and (self.found == self.confirmation)
        )

    def satisfied(self, step: Step) -> bool:
        """Whether this turn produced the event the step expects."""
        return step.expect in self._seen

    # -- what the I/O loop tells it ----------------------------------------------------------

    def user_turn(self, text: str, now: float) -> list[str]:
        """A typed turn is about to be sent: a new turn starts."""
        self._new_turn(now)
        return [f"you   › {text}"]

    def audio_turn(self, label: str) -> list[str]:
        """Audio is about to stream; the turn ends when VAD hears the speech stop."""
        self._new_turn(None)
        return [f"you   ≋ {label}"]

    def fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message

    def closed(self, code: int | None, reason: str) -> list[str]:
        """The socket is closed (we did not close it): nothing more can happen."""
        what = f"code {code}" if code is not None else "no close frame"
        if reason:
            what += f": {reason}"
        self.fail(f"the server closed the connection ({what})")
        return [f"✗ connection closed  ({what})"]

    def feed(self, event: dict[str, Any], now: float) -> list[str]:
        """One server event: update the verdict and return what to print (maybe nothing)."""
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        return handler(self, event, now) if handler else []

    # -- handlers ----------------------------------------------------------------------------

    def _new_turn(self, now: float | None) -> None:
        self._final_done = False
        self._seen = set()
        self._turn_ended_at = now

    def _session_created(self, event: dict[str, Any], now: float) -> list[str]:
        session = _obj(event.get("session"))
        return [f"· session.created  {session.get('id', '?')}  model {session.get('model', '?')}"]

    def _session_updated(self, event: dict[str, Any], now: float) -> list[str]:
        self.ready = True
        session = _obj(event.get("session"))
        audio = _obj(session.get("audio"))
        audio_in = _obj(audio.get("input"))
        audio_out = _obj(audio.get("output"))
        turn = audio_in.get("turn_detection")
        vad = turn.get("type") if isinstance(turn, dict) else "off"
        tools = _list(session.get("tools"))
        return [
            f"· session.updated  voice {audio_out.get('voice', '?')}, turn detection {vad}, "
            f"{len(tools)} tools"
        ]

    def _error(self, event: dict[str, Any], now: float) -> list[str]:
        text = _error_text(event)
        self.fail(f"the server sent an error: {text}")
        return [f"✗ error  {text}"]

    def _speech_started(self, event: dict[str, Any], now: float) -> list[str]:
        self.speech_started += 1
        self._final_done = False
        at = event.get("audio_start_ms")
        return [f"  ◉ speech started  at {_seconds(at)} of input audio"]

    def _speech_stopped(self, event: dict[str, Any], now: float) -> list[str]:
        self.speech_stopped += 1
        self._turn_ended_at = now
        at = event.get("audio_end_ms")
        return [f"  ○ speech stopped  at {_seconds(at)} of input audio"]

    def _heard(self, event: dict[str, Any], now: float) -> list[str]:
        return [f"you   ≋ (heard) {event.get('transcript', '')}"]

    def _response_created(self, event: dict[str, Any], now: float) -> list[str]:
        self._in_progress += 1
        self._final_done = False
        return []

    def _first_output(self, event: dict[str, Any], now: float) -> list[str]:
        if event.get("type") == p.OUTPUT_AUDIO_DELTA:
            delta = event.get("delta")
            if isinstance(delta, str):
                self.audio_out_bytes += len(delta) * 3 // 4 - delta[-2:].count("=")
        if self._turn_ended_at is not None:
            self.first_audio_ms.append(round((now - self._turn_ended_at) * 1000, 1))
            self._turn_ended_at = None
        return []

    def _function_call(self, event: dict[str, Any], now: float) -> list[str]:
        return [f"  ⚙ {event.get('name')}({event.get('arguments', '')})"]

    def _transcript_done(self, event: dict[str, Any], now: float) -> list[str]:
        text = event.get("transcript") if "transcript" in event else event.get("text")
        return [f"agent › {text}"] if text else []

    def _response_done(self, event: dict[str, Any], now: float) -> list[str]:
        response = _obj(event.get("response"))
        self._in_progress = max(0, self._in_progress - 1)
        self._stats_fresh = False
        status = response.get("status")
        lines: list[str] = []
        if status == "failed":
            details = response.get("status_details")
            self.fail(f"the model's response failed: {orjson.dumps(details).decode()}")
            lines.append(f"✗ response failed  {orjson.dumps(details).decode()}")
        elif status in ("cancelled", "incomplete"):
            details = response.get("status_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            lines.append(f"· response {status}  ({reason or 'no reason given'})")
        # A completed response that called a tool is not the end: the reply comes after it.
        if status != "completed" or not _has_function_call(response):
            self._final_done = True
        return lines

    def _confirmed(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_CONFIRMED)
        code = event.get("confirmation_number")
        self.confirmation = str(code) if code else None
        repeated = "  (the same booking was already held)" if event.get("repeated") else ""
        if not code:
            self.fail("reservation.confirmed carried no confirmation number")
        return [f"✓ reservation.confirmed  {code}  {describe(event.get('reservation'))}{repeated}"]

    def _found(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_FOUND)
        code = event.get("confirmation_number")
        self.found = str(code) if code else None
        line = f"✓ reservation.found      {code}  {describe(event.get('reservation'))}"
        if self.confirmation is not None and self.found != self.confirmation:
            self.fail(
                f"confirmation numbers differ: booked {self.confirmation}, "
                f"the lookup found {self.found}"
            )
            line = "✗" + line[1:]
        return [line]

    def _not_found(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_NOT_FOUND)
        message = event.get("message") or "no reservation found"
        self.fail(f"the lookup found no reservation: {message}")
        return [f"✗ reservation.not_found  {message}"]

    def _failed(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_FAILED)
        reason, message = event.get("reason") or "?", event.get("message") or ""
        self.fail(f"the reservation failed ({reason}): {message}")
        return [f"✗ reservation.failed  {reason}: {message}"]

    def _availability(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.AVAILABILITY_CHECKED)
        verdict = "available" if event.get("available") else "not available"
        return [
            f"· availability.checked  {event.get('date')} {event.get('time')}  "
            f"party of {event.get('party_size')}: {verdict}"
        ]

    def _session_stats(self, event: dict[str, Any], now: float) -> list[str]:
        self.stats = event
        self._stats_fresh = True
        return []

    # -- the end -----------------------------------------------------------------------------

    def summary(self) -> list[str]:
        """The last session.stats, in words: reply latency, tool calls, tokens."""
        lines = ["── session.stats ──"]
        stats = self.stats
        if stats is None:
            lines.append("  (no session.stats received)")
        else:
            lines.append(f"  reply latency   {_latency(stats.get('reply_latency_ms'))}")
            lines.append(f"  tool calls      {_tool_calls(stats.get('tool_calls'))}")
            lines.append(f"  tokens          {_tokens(stats.get('usage'))}")
            lines.append(
                f"  responses       {stats.get('responses', '?')}, audio frames in "
                f"{stats.get('audio_frames_in', '?')} / out {stats.get('audio_frames_out', '?')}"
            )
        if self.audio_out_bytes:
            seconds = self.audio_out_bytes / (p.PCM16_BYTES_PER_MS * 1000)
            lines.append(f"  agent audio     {seconds:.2f} s received")
        if self.first_audio_ms:
            shown = ", ".join(f"{ms:.0f} ms" for ms in self.first_audio_ms)
            lines.append(f"  first reply     {shown}  (seen by this client, per turn)")
        return lines


_HANDLERS: dict[str, Callable[[CallLog, dict[str, Any], float], list[str]]] = {
    p.SESSION_CREATED: CallLog._session_created,
    p.SESSION_UPDATED: CallLog._session_updated,
    p.ERROR: CallLog._error,
    p.SPEECH_STARTED: CallLog._speech_started,
    p.SPEECH_STOPPED: CallLog._speech_stopped,
    p.INPUT_TRANSCRIPTION_COMPLETED: CallLog._heard,
    p.RESPONSE_CREATED: CallLog._response_created,
    p.OUTPUT_AUDIO_DELTA: CallLog._first_output,
    p.OUTPUT_TEXT_DELTA: CallLog._first_output,
    p.FUNCTION_ARGS_DONE: CallLog._function_call,
    p.OUTPUT_TRANSCRIPT_DONE: CallLog._transcript_done,
    p.OUTPUT_TEXT_DONE: CallLog._transcript_done,
    p.RESPONSE_DONE: CallLog._response_done,
    p.RESERVATION_CONFIRMED: CallLog._confirmed,
    p.RESERVATION_FOUND: CallLog._found,
    p.RESERVATION_NOT_FOUND: CallLog._not_found,
    p.RESERVATION_FAILED: CallLog._failed,
    p.AVAILABILITY_CHECKED: CallLog._availability,
    p.SESSION_STATS: CallLog._session_stats,
}


def _seconds(ms: Any) -> str:
    return f"{ms / 1000:.2f} s" if isinstance(ms, int | float) else "?"


def _latency(summary: Any) -> str:
    if not isinstance(summary, dict) or not summary.get("count"):
        return "none measured (it runs from the end of the caller's speech to the first audio)"
    return (
        f"last {summary.get('last')} ms, p50 {summary.get('p50')} ms, max {summary.get('max')} ms"
        f"  ({summary['count']} spoken turn{'' if summary['count'] == 1 else 's'})"
    )


def _tool_calls(calls: Any) -> str:
    if not isinstance(calls, list) or not calls:
        return "none"
    return ", ".join(
        f"{call.get('name')} {call.get('duration_ms')} ms{'' if call.get('ok') else ' (failed)'}"
        for call in calls
        if isinstance(call, dict)
    )


def _tokens(usage: Any) -> str:
    if not isinstance(usage, dict) or not usage:
        return "none reported"
    text = (
        f"{usage.get('total_tokens', 0)} total (input {usage.get('input_tokens', 0)}, "
        f"output {usage.get('output_tokens', 0)})"
    )
    audio = [f"{side} {usage[f'{side}_audio_tokens']}" for side in ("input", "output")
             if f"{side}_audio_tokens" in usage]  # fmt: skip
    return text + (f"; audio: {', '.join(audio)}" if audio else "")
