"""OpenAI Realtime (GA) event names and our own custom events, in one place.

Everything that talks the protocol -- the relay, the offline model, the demo client, the page's
tests -- takes its names from here, so a renamed event is a one-line change. Pure data and tiny
builders; no I/O. See ``shared/REALTIME_PROTOCOL.md`` for the shapes.
"""

from __future__ import annotations

import itertools
from typing import Any

# --- client -> model events -------------------------------------------------------------------
SESSION_UPDATE = "session.update"
INPUT_AUDIO_APPEND = "input_audio_buffer.append"
INPUT_AUDIO_COMMIT = "input_audio_buffer.commit"
INPUT_AUDIO_CLEAR = "input_audio_buffer.clear"
ITEM_CREATE = "conversation.item.create"
ITEM_TRUNCATE = "conversation.item.truncate"
ITEM_DELETE = "conversation.item.delete"
RESPONSE_CREATE = "response.create"
RESPONSE_CANCEL = "response.cancel"

# --- model -> client events -------------------------------------------------------------------
ERROR = "error"
SESSION_CREATED = "session.created"
SESSION_UPDATED = "session.updated"
SPEECH_STARTED = "input_audio_buffer.speech_started"
SPEECH_STOPPED = "input_audio_buffer.speech_stopped"
INPUT_AUDIO_COMMITTED = "input_audio_buffer.committed"
INPUT_AUDIO_CLEARED = "input_audio_buffer.cleared"
ITEM_ADDED = "conversation.item.added"
ITEM_DONE = "conversation.item.done"
ITEM_TRUNCATED = "conversation.item.truncated"
INPUT_TRANSCRIPTION_COMPLETED = "conversation.item.input_audio_transcription.completed"
RESPONSE_CREATED = "response.created"
RESPONSE_DONE = "response.done"
OUTPUT_ITEM_ADDED = "response.output_item.added"
OUTPUT_ITEM_DONE = "response.output_item.done"
CONTENT_PART_ADDED = "response.content_part.added"
CONTENT_PART_DONE = "response.content_part.done"
FUNCTION_ARGS_DELTA = "response.function_call_arguments.delta"
FUNCTION_ARGS_DONE = "response.function_call_arguments.done"
OUTPUT_AUDIO_DELTA = "response.output_audio.delta"
OUTPUT_AUDIO_DONE = "response.output_audio.done"
OUTPUT_TRANSCRIPT_DELTA = "response.output_audio_transcript.delta"
OUTPUT_TRANSCRIPT_DONE = "response.output_audio_transcript.done"
OUTPUT_TEXT_DELTA = "response.output_text.delta"
OUTPUT_TEXT_DONE = "response.output_text.done"
RATE_LIMITS_UPDATED = "rate_limits.updated"
# Sent where OpenAI plays the audio itself (WebRTC, SIP): the caller has started / finished
# hearing the response, or it was cut off.
PLAYOUT_STARTED = "output_audio_buffer.started"
PLAYOUT_STOPPED = "output_audio_buffer.stopped"
PLAYOUT_CLEARED = "output_audio_buffer.cleared"

# --- our custom server -> page events (never sent to the model) -------------------------------
RESERVATION_CONFIRMED = "reservation.confirmed"
RESERVATION_REQUESTED = "reservation.requested"  # a party over the limit: staff will confirm
RESERVATION_FOUND = "reservation.found"
RESERVATION_NOT_FOUND = "reservation.not_found"
RESERVATION_CHANGED = "reservation.changed"
RESERVATION_CANCELLED = "reservation.cancelled"
RESERVATION_FAILED = "reservation.failed"
AVAILABILITY_CHECKED = "availability.checked"
SESSION_STATS = "session.stats"
SESSION_RECONNECTED = "session.reconnected"
CALL_END_REQUESTED = "call.end_requested"  # the end_call tool: hang up once the goodbye is heard
CALL_TRANSFER_REQUESTED = "call.transfer_requested"  # transfer_call: hand over after the host

# The only client events the relay forwards to the model. conversation.item.create is further
# limited to user messages and session.update to harmless fields (see session.py).
CLIENT_ALLOWED = frozenset(
    {
        SESSION_UPDATE,
        INPUT_AUDIO_APPEND,
        INPUT_AUDIO_COMMIT,
        INPUT_AUDIO_CLEAR,
        ITEM_CREATE,
        ITEM_TRUNCATE,
        RESPONSE_CREATE,
        RESPONSE_CANCEL,
    }
)

# Audio: PCM16 mono 24 kHz = 48 bytes per millisecond.
PCM16_RATE = 24_000
PCM16_BYTES_PER_MS = 48

_event_ids = itertools.count(1)


def event_id(prefix: str = "evt") -> str:
    """A process-unique event id (the API only needs uniqueness within a session)."""
    return f"{prefix}_{next(_event_ids):x}"


def error_event(
    code: str,
    message: str,
    *,
    client_event_id: str | None = None,
    error_type: str = "invalid_request_error",
    param: str | None = None,
) -> dict[str, Any]:
    """An ``error`` event shaped exactly like the model's, so clients need one error handler."""
    return {
        "type": ERROR,
        "event_id": event_id(),
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


def custom_event(event_type: str, **fields: Any) -> dict[str, Any]:
    """One of our own page events (``reservation.*``, ``session.stats``...)."""
    return {"type": event_type, "event_id": event_id(), **fields}
