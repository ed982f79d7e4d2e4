"""What the relay's pure decisions return: actions to carry out, notes to report, close codes.

Kept apart from the session that makes them so the call core, the transports and their tests
speak of actions without importing the session's decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ToModel:
    text: str


@dataclass(frozen=True, slots=True)
class ToClient:
    text: str


@dataclass(frozen=True, slots=True)
class RunTool:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = ToModel | ToClient | RunTool | Close


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth reporting (records, metrics), not sent anywhere.

    Kinds: `turn` (role "caller" or "host", text), `tool` (name, arguments, output, ok, ms,
    page_event), `reply_latency` (ms), `first_audio` (ms since the call started), `usage` (a
    response's token usage), `refused` (code), `model_reconnected` (reason).
    """

    kind: str
    data: dict[str, Any]


CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
