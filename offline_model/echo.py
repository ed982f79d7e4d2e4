"""Echo mode's hot path: turn an ``input_audio_buffer.append`` into an ``output_audio.delta``.

Relay benchmarks measure the relay, so the fake model on the other end must cost next to
nothing per frame. Decoding and re-encoding megabytes of JSON per append would make the model the
bottleneck; instead the base64 payload is located in the raw text and spliced into a prebuilt
frame. Anything unusual (escapes, odd layout) returns ``None`` and takes the normal JSON path.
"""

from __future__ import annotations

import re

from protocol import realtime as p

_APPEND_TYPE = re.compile(r'"type"\s*:\s*"' + re.escape(p.INPUT_AUDIO_APPEND) + '"')
_AUDIO_KEY = '"audio"'
_FRAME_HEAD = '{"type":"' + p.OUTPUT_AUDIO_DELTA + '","event_id":"'
_FRAME_MIDDLE = (
    '","response_id":"resp_echo","item_id":"item_echo","output_index":0,"content_index":0,"delta":"'
)
_WHITESPACE = " \t\r\n"


def echo_frame(raw: str) -> tuple[str, int] | None:
    """``(delta frame, decoded audio byte count)`` for a plain append event, else ``None``."""
    key = raw.find(_AUDIO_KEY)
    if key <= 0 or raw[key - 1] not in "{," + _WHITESPACE:
        return None
    colon = _skip(raw, key + len(_AUDIO_KEY))
    if colon >= len(raw) or raw[colon] != ":":
        return None
    quote = _skip(raw, colon + 1)
    if quote >= len(raw) or raw[quote] != '"':
        return None
    start = quote + 1
    end = raw.find('"', start)
    if end < 0 or raw.find("\\", start, end) >= 0:
        return None
    # The type may come before or after the payload; both remainders are short.
    if not (_APPEND_TYPE.search(raw, 0, key) or _APPEND_TYPE.search(raw, end + 1)):
        return None
    payload = raw[start:end]
    padding = (end - start > 0 and raw[end - 1] == "=") + (end - start > 1 and raw[end - 2] == "=")
    decoded = (end - start) // 4 * 3 - padding
    frame = "".join((_FRAME_HEAD, p.event_id("event"), _FRAME_MIDDLE, payload, '"}'))
    return frame, decoded


def _skip(raw: str, index: int) -> int:
    while index < len(raw) and raw[index] in _WHITESPACE:
        index += 1
    return index
