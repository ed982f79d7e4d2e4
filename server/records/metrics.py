"""Prometheus metrics: a `CallObserver` that counts, and the `/metrics` text.

Through `prometheus_client`'s documented API only. One process: the metrics live in this app's
own registry (so several apps in one test process do not collide). Several workers
(`python -m server --workers N`): `server/serving.py` gives every worker the same
`PROMETHEUS_MULTIPROC_DIR` before it starts, each worker's values go to files there, and
`/metrics` in any worker adds up all of them (`MultiProcessCollector`); the supervisor marks a
dead worker's files so its live gauges stop counting.

The observer methods run on the call's read paths: each is a few dictionary look-ups and
increments, and nothing here is touched per audio frame.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from server.realtime.session import Note
from server.records.summary import Prices, event_outcome, next_outcome, usage_counts
from server.settings import Settings

if TYPE_CHECKING:
    from server.call.core import Call

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The reservation tools, by the action they are counted under.
TOOL_ACTIONS = {
    "make_reservation": "book",
    "lookup_reservation": "lookup",
    "change_reservation": "change",
    "cancel_reservation": "cancel",
    "check_availability": "availability",
}
CONTENT_TYPE = CONTENT_TYPE_LATEST

log = logging.getLogger("server.records")


class Metrics:
    """The metrics of one app (see the module docstring); also its `CallObserver`."""

    def __init__(self, settings: Settings):
        self.multiprocess_dir = settings.prometheus_multiproc_dir
        self.prices = Prices.from_settings(settings)
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls_active = Gauge(
            "voice_calls_active",
            "Calls in progress",
            ["channel"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.calls_ended = Counter(
            "voice_calls_ended",
            "Calls ended",
            ["channel", "end_reason", "outcome"],
            registry=r,
        )
        self.reply_latency = Histogram(
            "voice_reply_latency_seconds",
            "Caller stops speaking to the host's first audio",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_audio = Histogram(
            "voice_first_audio_seconds",
            "Call start to the host's first audio (the greeting)",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tool_duration = Histogram(
            "voice_tool_duration_seconds",
            "Tool calls, by tool and outcome (ok or the error code)",
            ["tool", "outcome"],
            buckets=TOOL_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "voice_model_tokens",
            "Model tokens, by direction (input, output) and modality (text, audio)",
            ["direction", "modality"],
            registry=r,
        )
        self.cached_tokens = Counter(
            "voice_model_cached_tokens",
            "Cached input tokens (part of the input tokens), by modality",
            ["modality"],
            registry=r,
        )
        self.cost = Counter(
            "voice_model_cost_usd",
            "Estimated model cost in USD (MODEL_PRICE_*), by channel",
            ["channel"],
            registry=r,
        )
        self.reconnects = Counter(
            "voice_model_reconnects",
            "Model sessions replaced mid-call, by reason",
            ["reason"],
            registry=r,
        )
        self.refused = Counter(
            "voice_refused_client_events",
            "Client events refused, by error code",
            ["code"],
            registry=r,
        )
        self.db_errors = Counter(
            "voice_database_errors",
            "Database operations that failed (outage or timeout), by operation",
            ["operation"],
            registry=r,
        )
        self.reservations = Counter(
            "voice_reservations",
            "Reservation tool results, by action and outcome",
            ["action", "outcome"],
            registry=r,
        )
        self._outcomes: dict[str, str] = {}  # live calls' outcome so far, by record id

    # -- the observer ------------------------------------------------------------------------

    # Observers must never raise into the call: a surprise is logged and the call goes on.

    def call_started(self, call: Call) -> None:
        try:
            self._outcomes[call.spec.record_id] = "none"
            self.calls_active.labels(call.spec.channel).inc()
        except Exception:
            log.exception("metrics: call start not counted")

    def call_noted(self, call: Call, note: Note) -> None:
        try:
            self._note(call, note.kind, note.data)
        except Exception:
            log.exception("metrics: %s note not counted", note.kind)

    def _note(self, call: Call, kind: str, data: dict[str, Any]) -> None:
        if kind == "reply_latency":
            self.reply_latency.labels(call.spec.channel).observe(float(data["ms"]) / 1000)
        elif kind == "tool":
            self._tool(call, data)
        elif kind == "usage":
            self._usage(call, data)
        elif kind == "first_audio":
            self.first_audio.labels(call.spec.channel).observe(float(data["ms"]) / 1000)
        elif kind == "refused":
            self.refused.labels(str(data.get("code"))).inc()
        elif kind == "model_reconnected":
            self.reconnects.labels(str(data.get("reason"))).inc()

    def call_ended(self, call: Call) -> None:
        try:
            outcome = self._outcomes.pop(call.spec.record_id, "none")
            channel = call.spec.channel
            self.calls_active.labels(channel).dec()
            self.calls_ended.labels(channel, call.end_reason, outcome).inc()
        except Exception:
            log.exception("metrics: call end not counted")

    def _tool(self, call: Call, data: dict[str, Any]) -> None:
        name = str(data.get("name"))
        outcome = "ok"
        if not data.get("ok"):
            outcome = _error_code(data.get("output"))
            if outcome == "database_unavailable":
                self.db_errors.labels("tool").inc()
        self.tool_duration.labels(name, outcome).observe(float(data.get("ms", 0)) / 1000)
        page_event = data.get("page_event")
        key = call.spec.record_id
        if key in self._outcomes:
            self._outcomes[key] = next_outcome(self._outcomes[key], event_outcome(page_event))
        action = TOOL_ACTIONS.get(name)
        if action is not None and isinstance(page_event, dict):
            kind = str(page_event.get("type", ""))
            self.reservations.labels(action, kind.rpartition(".")[2] or "none").inc()

    def _usage(self, call: Call, usage: dict[str, Any]) -> None:
        counts = usage_counts(usage)
        for key, value in counts.items():
            if not value:
                continue
            direction, _, modality = key.partition("_")
            if modality.startswith("cached_"):
                self.cached_tokens.labels(modality.removeprefix("cached_")).inc(value)
            else:
                self.tokens.labels(direction, modality).inc(value)
        self.cost.labels(call.spec.channel).inc(self.prices.cost(counts))

    def database_error(self, operation: str) -> None:
        self.db_errors.labels(operation).inc()

    # -- the text ----------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text of this process, or of every worker in multiprocess mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return generate_latest(registry)


def _error_code(output: Any) -> str:
    """A failed tool's error code, from its JSON output ("error" when there is none)."""
    try:
        parsed = orjson.loads(output) if isinstance(output, str | bytes) else output
    except orjson.JSONDecodeError:
        return "error"
    code = parsed.get("error") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) and code else "error"
