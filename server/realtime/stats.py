"""A call's figures for `session.stats` and the records, and the client event rate limit."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

USAGE_KEYS = ("total_tokens", "input_tokens", "output_tokens")
DETAIL_KEYS = ("text_tokens", "audio_tokens", "cached_tokens")
KEEP = 50  # figures kept per session for session.stats


@dataclass
class Stats:
    reply_latencies_ms: list[float] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    responses: int = 0
    audio_frames_in: int = 0
    audio_frames_out: int = 0
    refused: int = 0

    def add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key in USAGE_KEYS:
            self._add(key, usage.get(key))
        for side in ("input", "output"):
            details = usage.get(f"{side}_token_details")
            if isinstance(details, dict):
                for key in DETAIL_KEYS:
                    self._add(f"{side}_{key}", details.get(key))

    def _add(self, key: str, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            self.usage[key] = self.usage.get(key, 0) + value

    def as_event_fields(self) -> dict[str, Any]:
        latencies = self.reply_latencies_ms
        summary = (
            {
                "count": len(latencies),
                "last": latencies[-1],
                "p50": round(statistics.median(latencies), 1),
                "max": max(latencies),
            }
            if latencies
            else {"count": 0}
        )
        return {
            "reply_latency_ms": summary,
            "reply_latencies_ms": latencies[-KEEP:],
            "tool_calls": self.tool_calls[-KEEP:],
            "usage": dict(self.usage),
            "responses": self.responses,
            "audio_frames_in": self.audio_frames_in,
            "audio_frames_out": self.audio_frames_out,
            "refused_events": self.refused,
        }


class EventRate:
    """A token bucket: `rate` events a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.last: float | None = None

    def allow(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
