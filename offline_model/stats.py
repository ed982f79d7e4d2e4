"""Counters that let tests prove traffic really reached the model (served at ``GET /stats``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Stats:
    """Process-wide counters for one ``OfflineModel``; mutated only from its event loop."""

    sessions_opened: int = 0
    sessions_active: int = 0
    audio_bytes_received: int = 0
    audio_bytes_sent: int = 0
    function_calls: int = 0
    function_outputs_received: int = 0
    transcriptions: int = 0  # utterances recognised
    transcriptions_refused: int = 0  # utterances the recogniser was too busy (or failed) to hear
    transcription_cpu_s: float = 0.0  # CPU the worker processes spent decoding them
    last_model: str | None = None
    last_authorization_seen: bool = False

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)
