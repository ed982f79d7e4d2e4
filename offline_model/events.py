"""Builders for the GA Realtime objects the offline model sends: session, items, responses, usage.

Clients are written against the real API, so every shape here follows it field for field (see
``shared/REALTIME_PROTOCOL.md`` and the ``openai`` SDK's ``types/realtime``). Keeping the shapes in
one module means the state machine only decides *what* happens, never how it is spelled.
"""

from __future__ import annotations

import copy
import secrets
import time
from typing import Any

from protocol import realtime as p

Event = dict[str, Any]

DEFAULT_TURN_DETECTION: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
PCM_FORMAT: dict[str, Any] = {"type": "audio/pcm", "rate": p.PCM16_RATE}


def new_id(prefix: str) -> str:
    """A random object id shaped like the API's (``item_…``, ``resp_…``, ``call_…``)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def event(event_type: str, **fields: Any) -> Event:
    """A server event: ``type`` first, then a unique ``event_id``, then the payload."""
    return {"type": event_type, "event_id": p.event_id("event"), **fields}


def default_session(model: str) -> dict[str, Any]:
    """The session object the real API reports in ``session.created`` before any update."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "expires_at": int(time.time()) + 3600,
        "audio": {
            "input": {
                "format": dict(PCM_FORMAT),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(DEFAULT_TURN_DETECTION),
            },
            "output": {"format": dict(PCM_FORMAT), "voice": "marin", "speed": 1.0},
        },
        "include": None,
    }


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``session.update`` semantics: objects merge key by key; lists and nulls replace."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# --- conversation items --------------------------------------------------------------------


def user_audio_item(item_id: str) -> dict[str, Any]:
    """A committed audio turn; like the real API without transcription, ``transcript`` is null."""
    return {
        "id": item_id,
        "type": "message",
        "object": "realtime.item",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }


def transcription_completed(item_id: str, transcript: str) -> Event:
    """What the caller said in ``item_id``, as the API reports it when transcription is on."""
    tokens = text_tokens(transcript)
    return event(
        p.INPUT_TRANSCRIPTION_COMPLETED,
        item_id=item_id,
        content_index=0,
        transcript=transcript,
        usage={
            "type": "tokens",
            "input_tokens": 0,
            "output_tokens": tokens,
            "total_tokens": tokens,
        },
    )


def assistant_item(item_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "object": "realtime.item",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }


def function_call_item(item_id: str, name: str, call_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "object": "realtime.item",
        "status": "in_progress",
        "name": name,
        "call_id": call_id,
        "arguments": "",
    }


# --- responses -----------------------------------------------------------------------------


def response_object(
    response_id: str,
    *,
    status: str,
    output: list[dict[str, Any]],
    modalities: list[str],
    audio_output: dict[str, Any],
    conversation_id: str,
    metadata: dict[str, Any] | None = None,
    status_details: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": status_details,
        "output": output,
        "conversation_id": conversation_id,
        "output_modalities": modalities,
        "max_output_tokens": "inf",
        "audio": {"output": audio_output},
        "usage": usage,
        "metadata": metadata,
    }


def usage(
    *, input_text: int, input_audio: int, output_text: int, output_audio: int
) -> dict[str, Any]:
    """Token accounting shaped like the API's (estimates: ~4 chars/token, audio by duration)."""
    input_tokens = input_text + input_audio
    output_tokens = output_text + output_audio
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {
            "text_tokens": input_text,
            "audio_tokens": input_audio,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
    }


def text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def rate_limits(tokens_used: int) -> Event:
    """The ``rate_limits.updated`` the API sends after each response."""
    return event(
        p.RATE_LIMITS_UPDATED,
        rate_limits=[
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {
                "name": "tokens",
                "limit": 400_000,
                "remaining": max(0, 400_000 - tokens_used),
                "reset_seconds": 0.3,
            },
        ],
    )
