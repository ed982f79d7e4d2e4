"""What one call amounts to, from the call core's notes: outcome, figures, cost, transcript.

Pure (no I/O, no clock of its own): the recorder feeds each note in and reads a row out, so
every rule here -- which outcome wins, how cached tokens are priced -- is tested with plain dicts.
The metrics observer uses the same outcome rules, so a call counts the same in both places.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from server.realtime.session import Note

# A tool's page event → what the call achieved by it.
EVENT_OUTCOMES = {
    "reservation.confirmed": "booked",
    "reservation.changed": "changed",
    "reservation.cancelled": "cancelled",
    "reservation.found": "looked_up",
    "reservation.not_found": "looked_up",
    "reservation.failed": "failed",
}
# A later outcome replaces the call's current one when it ranks at least as high: a booking
# after a failed attempt is "booked", a cancellation after a booking "cancelled", a failure
# after a booking stays "booked", and a failure outranks a mere look-up.
OUTCOME_RANK = {"none": 0, "looked_up": 1, "failed": 2, "booked": 3, "changed": 3, "cancelled": 3}
OUTCOMES = tuple(OUTCOME_RANK)
TEXT_LIMIT = 4000  # characters of one transcript entry (a tool's output included)
TRANSCRIPT_LIMIT = 500  # entries per call; later ones are counted, not kept
TOOL_CALLS_LIMIT = 200
USAGE_KEYS = (
    "input_text",
    "input_audio",
    "input_cached_text",
    "input_cached_audio",
    "output_text",
    "output_audio",
)


def event_outcome(page_event: Any) -> str | None:
    if isinstance(page_event, dict):
        return EVENT_OUTCOMES.get(str(page_event.get("type")))
    return None


def next_outcome(current: str, new: str | None) -> str:
    """The call's outcome after one more tool result (see `OUTCOME_RANK`)."""
    if new is None or OUTCOME_RANK[new] < OUTCOME_RANK[current]:
        return current
    return new


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_counts(usage: Any) -> dict[str, int]:
    """A response's usage as tokens per direction and modality, cached input split out.

    Cached tokens are part of the text and audio input counts; when the API does not say which
    modality they were (no `cached_tokens_details`), they are taken as text first.
    """
    counts = dict.fromkeys(USAGE_KEYS, 0)
    if not isinstance(usage, dict):
        return counts
    inp = usage.get("input_token_details")
    out = usage.get("output_token_details")
    inp = inp if isinstance(inp, dict) else {}
    out = out if isinstance(out, dict) else {}
    text_in, audio_in = _count(inp.get("text_tokens")), _count(inp.get("audio_tokens"))
    if not inp:  # no breakdown at all: all input as text
        text_in = _count(usage.get("input_tokens"))
    cached = _count(inp.get("cached_tokens"))
    details = inp.get("cached_tokens_details")
    if isinstance(details, dict) and details:
        cached_text = min(_count(details.get("text_tokens")), text_in)
        cached_audio = min(_count(details.get("audio_tokens")), audio_in)
    else:
        cached_text = min(cached, text_in)
        cached_audio = min(cached - cached_text, audio_in)
    text_out, audio_out = _count(out.get("text_tokens")), _count(out.get("audio_tokens"))
    if not out:
        text_out = _count(usage.get("output_tokens"))
    counts.update(
        input_text=text_in,
        input_audio=audio_in,
        input_cached_text=cached_text,
        input_cached_audio=cached_audio,
        output_text=text_out,
        output_audio=audio_out,
    )
    return counts


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens (the settings' MODEL_PRICE_*)."""

    text_in: float
    text_in_cached: float
    text_out: float
    audio_in: float
    audio_in_cached: float
    audio_out: float

    @classmethod
    def from_settings(cls, settings: Any) -> Prices:
        return cls(
            text_in=settings.model_price_text_in,
            text_in_cached=settings.model_price_text_in_cached,
            text_out=settings.model_price_text_out,
            audio_in=settings.model_price_audio_in,
            audio_in_cached=settings.model_price_audio_in_cached,
            audio_out=settings.model_price_audio_out,
        )

    def cost(self, usage: dict[str, int]) -> float:
        """The estimated cost in USD of summed `usage_counts`."""
        g = usage.get
        text_fresh = g("input_text", 0) - g("input_cached_text", 0)
        audio_fresh = g("input_audio", 0) - g("input_cached_audio", 0)
        micro = (
            text_fresh * self.text_in
            + g("input_cached_text", 0) * self.text_in_cached
            + g("output_text", 0) * self.text_out
            + audio_fresh * self.audio_in
            + g("input_cached_audio", 0) * self.audio_in_cached
            + g("output_audio", 0) * self.audio_out
        )
        return round(micro / 1_000_000, 6)


def _clip(text: Any) -> str:
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "…"


@dataclass
class CallLog:
    """One call's record as it grows; `row()` is what the calls table gets."""

    id: str
    sid: str
    channel: str
    caller: str | None
    started_at: float  # time.time()
    keep_transcript: bool = True
    ended_at: float | None = None
    end_reason: str | None = None
    outcome: str = "none"
    confirmation_number: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    first_audio_ms: float | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_KEYS, 0))
    transcript: list[dict[str, Any]] = field(default_factory=list)
    dropped_entries: int = 0
    dirty: bool = True  # changed since the last write

    def _entry(self, at: float, entry: dict[str, Any]) -> None:
        if not self.keep_transcript:
            return
        if len(self.transcript) >= TRANSCRIPT_LIMIT:
            self.dropped_entries += 1
            return
        self.transcript.append({"at_s": round(max(0.0, at - self.started_at), 2), **entry})

    def note(self, note: Note, at: float) -> None:
        """Take one of the core's notes, seen at wall-clock time `at`."""
        data = note.data
        kind = note.kind
        if kind == "turn":
            self._entry(at, {"role": data.get("role"), "text": _clip(data.get("text", ""))})
        elif kind == "tool":
            self._tool(data, at)
        elif kind == "reply_latency":
            self.latencies_ms.append(float(data.get("ms", 0.0)))
        elif kind == "first_audio":
            if self.first_audio_ms is None:
                self.first_audio_ms = float(data.get("ms", 0.0))
        elif kind == "usage":
            for key, value in usage_counts(data).items():
                self.usage[key] += value
        else:
            return  # refusals and reconnects are metrics, not part of the record
        self.dirty = True

    def _tool(self, data: dict[str, Any], at: float) -> None:
        name, ok, ms = str(data.get("name")), bool(data.get("ok")), float(data.get("ms", 0.0))
        if len(self.tool_calls) < TOOL_CALLS_LIMIT:
            at_s = round(max(0.0, at - self.started_at), 2)
            self.tool_calls.append({"name": name, "ok": ok, "ms": round(ms, 1), "at_s": at_s})
        page_event = data.get("page_event")
        new = event_outcome(page_event)
        before = self.outcome
        self.outcome = next_outcome(before, new)
        if new is not None and self.outcome == new and isinstance(page_event, dict):
            number = page_event.get("confirmation_number")
            reservation = page_event.get("reservation")
            if not number and isinstance(reservation, dict):
                number = reservation.get("confirmation_number")
            if isinstance(number, str) and number:
                self.confirmation_number = number
        self._entry(
            at,
            {
                "role": "tool",
                "name": name,
                "arguments": _clip(data.get("arguments", "")),
                "output": _clip(data.get("output", "")),
                "ok": ok,
                "ms": round(ms, 1),
            },
        )

    def end(self, ended_at: float, reason: str) -> None:
        self.ended_at, self.end_reason, self.dirty = ended_at, reason, True

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def cost(self, prices: Prices) -> float:
        return prices.cost(self.usage)

    def row(self, prices: Prices) -> dict[str, Any]:
        """The calls table's columns (times as epoch seconds; the store converts them)."""
        latencies = self.latencies_ms
        transcript: list[dict[str, Any]] | None = None
        if self.keep_transcript:
            transcript = list(self.transcript)
            if self.dropped_entries:
                transcript.append({"role": "note", "text": f"{self.dropped_entries} more entries"})
        return {
            "id": self.id,
            "sid": self.sid,
            "channel": self.channel,
            "caller": self.caller,
            "status": "ended" if self.ended else "live",
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "outcome": self.outcome,
            "confirmation_number": self.confirmation_number,
            "reply_count": len(latencies),
            "reply_latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "reply_latency_max_ms": max(latencies) if latencies else None,
            "first_audio_ms": self.first_audio_ms,
            "tool_calls": list(self.tool_calls),
            "usage": dict(self.usage),
            "cost_usd": self.cost(prices),
            "transcript": transcript,
        }
