"""``session.update``: validate a patch and merge it into the session, as the Realtime API does.

Pure functions over dicts: a refused patch raises ``ClientError`` and changes nothing, so the
caller (``conversation``) only swaps in the merged session once everything checked out.
"""

from __future__ import annotations

import copy
from typing import Any

from . import events
from .errors import ClientError, missing
from .formats import AudioFormat, format_of

__all__ = ["merged_session", "tool_names"]


def merged_session(session: dict[str, Any], patch: Any) -> tuple[dict[str, Any], list[AudioFormat]]:
    """The session with ``patch`` applied, and its (input, output) audio formats."""
    if not isinstance(patch, dict):
        raise missing("session")
    if "type" not in patch:
        raise missing("session.type")
    if patch["type"] != "realtime":
        raise ClientError(
            "invalid_value", "Only 'realtime' sessions are supported.", "session.type"
        )
    modalities = patch.get("output_modalities")
    if modalities is not None and modalities not in (["audio"], ["text"]):
        raise ClientError(
            "invalid_value",
            "output_modalities must be ['audio'] or ['text'].",
            "session.output_modalities",
        )
    if "tools" in patch and not isinstance(patch["tools"], list):
        raise ClientError("invalid_type", "tools must be an array.", "session.tools")
    merged = events.deep_merge(session, patch)
    merged["id"], merged["object"] = session["id"], session["object"]
    merged["type"] = "realtime"
    for way in ("input", "output"):  # a format is replaced whole: pcmu has no "rate"
        given = (patch.get("audio") or {}).get(way) or {}
        if isinstance(given, dict) and "format" in given:
            merged["audio"][way]["format"] = copy.deepcopy(given["format"])
    audio_input = merged.setdefault("audio", {}).setdefault("input", {})
    turn = audio_input.get("turn_detection")
    if isinstance(turn, dict) and turn.get("type") == "server_vad":
        audio_input["turn_detection"] = {**events.DEFAULT_TURN_DETECTION, **turn}
    try:
        formats = [
            format_of(merged["audio"].get(way, {}).get("format")) for way in ("input", "output")
        ]
    except ValueError:
        raise ClientError(
            "invalid_value",
            "Supported audio formats are {'type': 'audio/pcm', 'rate': 24000} and "
            "{'type': 'audio/pcmu'}.",
            "session.audio.format",
        ) from None
    return merged, formats


def tool_names(session: dict[str, Any], options: dict[str, Any]) -> set[str]:
    """Function tools the model may call now (a response may override the session's)."""
    tools = options.get("tools", session.get("tools")) or []
    choice = options.get("tool_choice", session.get("tool_choice", "auto"))
    names = {
        tool["name"]
        for tool in tools
        if isinstance(tool, dict)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("name"), str)
    }
    if choice == "none":
        return set()
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return names & {choice["name"]}
    return names
