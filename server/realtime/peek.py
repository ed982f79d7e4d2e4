"""An event's type read cheaply, but only where the cheap reading cannot disagree with JSON.

Most frames are audio, and the relay forwards audio as the same string it received, so it need
not parse it. A prefix check on `{"type":"` says what a frame is for the price of a `find`. It
is trusted only when no parser could read the frame otherwise: nothing later in the text can
override the first key (JSON parsers keep the last of duplicate keys, and keys may be escaped,
`"\\u0074ype"`), so a second `"type"` or any backslash sends the frame to the parser. Base64
audio holds neither.

Anything the prefix does not decide -- another key first, a space after a colon, an escape --
is parsed (`event_type`): the same JSON value always gets the same treatment, however it is
written. Only the speed differs.
"""

from __future__ import annotations

from typing import Any

import orjson

TYPE_PREFIX = '{"type":"'
_START = len(TYPE_PREFIX)


def peek_type(text: str) -> str | None:
    """The event type when the prefix alone decides it, else None (then parse the event)."""
    if not text.startswith(TYPE_PREFIX):
        return None
    end = text.find('"', _START)
    if end <= _START:
        return None
    if text.find('"type"', end) >= 0 or text.find("\\", _START) >= 0:
        return None
    return text[_START:end]


def event_type(text: str) -> tuple[str | None, dict[str, Any] | None]:
    """(type, parsed event): the event is None when the prefix decided, or when `text` is not a
    JSON object; the type is None when there is none (not an object, or no string `type`)."""
    kind = peek_type(text)
    if kind is not None:
        return kind, None
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(event, dict):
        return None, None
    kind = event.get("type")
    return (kind if isinstance(kind, str) else None), event
