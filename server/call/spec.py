"""What a call is before it runs: its spec, how it ends, and the close codes the core uses."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from protocol import realtime as p
from server.call.model import ModelConnection
from server.realtime.silence import Silence
from server.settings import Settings

CLOSE_NORMAL = 1000
CLOSE_RESTART = 1012
RECONNECT_DELAYS_S = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)  # before each try to replace a lost model
FATAL_MODEL_CLOSES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})  # retrying cannot help
FATAL_MODEL_ERRORS = frozenset({"model_auth_failed"})

ConnectFn = Callable[[], Awaitable[ModelConnection]]


@dataclass
class CallSpec:
    """One call as its adapter knows it at the start."""

    sid: str  # the call's id: logs, records, the history of what it booked
    channel: str
    session_update: dict[str, Any]  # the server's session settings for this call
    connect_model: ConnectFn  # opens (and, after a drop, reopens) this call's model session
    caller: str | None = None  # the caller's phone number, when the transport knows it
    peer: str = "?"  # the caller's address, for logs
    greet: bool = False  # the host speaks first (phones), without waiting for the caller
    # The model session is the call's own and outlives its socket (a SIP call's sideband): after
    # a drop the new socket gets the settings but not the conversation, which the session still
    # holds, and the session is never rotated (it ends with the call).
    sideband: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # Unique across processes and hosts (the sid is per process): the call's records row, and
    # the id the bookings' history links to.
    record_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def silence_for(spec: CallSpec, settings: Settings) -> Silence | None:
    """Who is asked after when silent: people on a page or a phone, not programs (SDK)."""
    if spec.channel == "sdk":
        return None
    audio = spec.session_update.get("session", {}).get("audio", {})
    output_format = audio.get("output", {}).get("format", {}).get("type", "audio/pcm")
    return Silence(
        prompt_s=settings.silence_prompt_s,
        hangup_s=settings.silence_hangup_s,
        bytes_per_ms=48 if output_format == "audio/pcm" else 8,
    )


class EndCall(Exception):
    """Ends the call: close the caller's side with `code`, after `error` if given."""

    def __init__(self, code: int, reason: str, error: dict[str, Any] | None = None):
        super().__init__(reason)
        self.code, self.reason, self.error = code, reason, error


class CallerGone(Exception):
    """The caller's side is closed: nothing more can be sent to it."""


def server_error(code: str, message: str) -> dict[str, Any]:
    return p.error_event(code, message, error_type="server_error")
