"""The small parts of the protocol that are ours to police: which client events may reach the
model, and in what shape. Pure: an event in, a `Refused` or a sanitised replacement out."""

from __future__ import annotations

from typing import Any

from protocol import realtime as p

VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
TURN_DETECTION_KEYS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "eagerness",
        "idle_timeout_ms",
    }
)
RESPONSE_CREATE_KEYS = frozenset({"metadata", "output_modalities"})
USER_CONTENT_TYPES = frozenset({"input_text", "input_audio"})


class Refused(Exception):
    """A client event we will not forward; becomes an `error` event naming its event_id."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def check_client_event(event: Any) -> dict[str, Any] | None:
    """Raise `Refused`, or return a sanitised replacement, or None to forward as sent."""
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise Refused("invalid_event", "An event must be a JSON object with a string 'type'.")
    kind = event["type"]
    if kind not in p.CLIENT_ALLOWED:
        allowed = ", ".join(sorted(p.CLIENT_ALLOWED))
        raise Refused(
            "event_not_allowed",
            f"'{kind[:80]}' is not accepted from clients (allowed: {allowed}).",
        )
    if kind == p.ITEM_CREATE:
        check_user_item(event.get("item"))
    elif kind == p.SESSION_UPDATE:
        return sanitise_session_update(event)
    elif kind == p.RESPONSE_CREATE:
        response = event.get("response")
        if response is not None:
            if not isinstance(response, dict):
                raise Refused("invalid_event", "'response' must be an object.", "response")
            extra = sorted(set(response) - RESPONSE_CREATE_KEYS)
            if extra:
                raise Refused(
                    "response_field_not_allowed",
                    f"response.{extra[0]} is set by the server only.",
                    f"response.{extra[0]}",
                )
    return None


def _is_in(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def check_user_item(item: Any) -> None:
    if not isinstance(item, dict):
        raise Refused("invalid_event", "'item' must be an object.", "item")
    if item.get("type") != "message" or item.get("role") != "user":
        raise Refused(
            "item_not_allowed",
            "Clients may only add user messages; tool outputs and other items are the server's.",
            "item.type",
        )
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise Refused("invalid_event", "'item.content' must be a non-empty list.", "item.content")
    for part in content:
        if not isinstance(part, dict) or not _is_in(part.get("type"), USER_CONTENT_TYPES):
            raise Refused(
                "item_not_allowed",
                "User message content may be input_text or input_audio only.",
                "item.content",
            )


def sanitise_session_update(event: dict[str, Any]) -> dict[str, Any]:
    """Keep the harmless fields (voice, turn detection, noise reduction); refuse the rest."""
    session = event.get("session")
    if not isinstance(session, dict):
        raise Refused("invalid_event", "'session' must be an object.", "session")
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    for key, value in session.items():
        if key == "type" and value == "realtime":
            continue
        if key != "audio" or not isinstance(value, dict):
            raise _not_yours(f"session.{key}")
        for side, settings in value.items():
            if side not in ("input", "output") or not isinstance(settings, dict):
                raise _not_yours(f"session.audio.{side}")
            for name, setting in settings.items():
                path = f"session.audio.{side}.{name}"
                if side == "output" and name == "voice":
                    if not _is_in(setting, VOICES):
                        raise Refused(
                            "invalid_value", f"Unknown voice {str(setting)[:40]!r}.", path
                        )
                    audio_out["voice"] = setting
                elif side == "input" and name == "turn_detection":
                    audio_in["turn_detection"] = _check_turn_detection(setting, path)
                elif side == "input" and name == "noise_reduction":
                    if setting is not None and setting not in (
                        {"type": "near_field"},
                        {"type": "far_field"},
                    ):
                        raise Refused("invalid_value", "Unknown noise reduction.", path)
                    audio_in["noise_reduction"] = setting
                else:
                    raise _not_yours(path)
    audio: dict[str, Any] = {}
    if audio_in:
        audio["input"] = audio_in
    if audio_out:
        audio["output"] = audio_out
    sanitised: dict[str, Any] = {"type": p.SESSION_UPDATE, "session": {"type": "realtime"}}
    if isinstance(event.get("event_id"), str):
        sanitised["event_id"] = event["event_id"]
    if audio:
        sanitised["session"]["audio"] = audio
    return sanitised


def _check_turn_detection(setting: Any, path: str) -> Any:
    if setting is None:
        return None
    if not isinstance(setting, dict) or setting.get("type") not in ("server_vad", "semantic_vad"):
        raise Refused("invalid_value", "turn_detection must be server_vad or semantic_vad.", path)
    extra = sorted(set(setting) - TURN_DETECTION_KEYS)
    if extra:
        raise _not_yours(f"{path}.{extra[0]}")
    for key, value in setting.items():
        rule = _TURN_DETECTION_VALUES.get(key)
        if rule is not None and not rule[0](value):
            raise Refused(
                "invalid_value", f"turn_detection.{key} must be {rule[1]}.", f"{path}.{key}"
            )
    return setting


def _is_ms(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# Checked here, not left to the model: a wrong-typed value is a client mistake to refuse by name
# (the offline model, for one, cannot apply it and fails every later session.update).
_TURN_DETECTION_VALUES: dict[str, tuple[Any, str]] = {
    "threshold": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
        "a number from 0 to 1",
    ),
    "prefix_padding_ms": (_is_ms, "a whole number of milliseconds"),
    "silence_duration_ms": (_is_ms, "a whole number of milliseconds"),
    "idle_timeout_ms": (lambda v: v is None or _is_ms(v), "a whole number of milliseconds"),
    "create_response": (lambda v: isinstance(v, bool), "true or false"),
    "interrupt_response": (lambda v: isinstance(v, bool), "true or false"),
    "eagerness": (lambda v: v in ("low", "medium", "high", "auto"), "low, medium, high or auto"),
}


def _not_yours(path: str) -> Refused:
    return Refused(
        "session_field_not_allowed",
        f"{path} is set by the server; clients may change only the voice and turn detection.",
        path,
    )
