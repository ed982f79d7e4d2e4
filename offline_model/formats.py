"""The session's audio formats: what the bytes of an append or a delta mean, and their clock.

The API takes ``{"type": "audio/pcm", "rate": 24000}`` (PCM16 24 kHz, 48 bytes per ms) and the
phone's ``{"type": "audio/pcmu"}`` (G.711 μ-law 8 kHz, 8 bytes per ms). Everything that turns
bytes into milliseconds (commit limits, truncation, token estimates) or into samples (the VAD,
the recogniser, the synthetic voice) asks the format, so the phone path is the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol import g711
from protocol import realtime as p

__all__ = ["PCM", "PCMU", "AudioFormat", "format_of"]


@dataclass(frozen=True)
class AudioFormat:
    """One wire format: its name, sample rate and bytes per millisecond."""

    type: str
    rate: int
    bytes_per_ms: int

    def ms(self, byte_count: int) -> int:
        return byte_count // self.bytes_per_ms

    def to_pcm16(self, data: bytes) -> bytes:
        """Wire bytes → PCM16 little-endian at ``rate``."""
        return g711.decode(data) if self is PCMU else data

    def from_pcm16(self, pcm: bytes) -> bytes:
        """PCM16 little-endian at ``rate`` → wire bytes."""
        return g711.encode(pcm) if self is PCMU else pcm


PCM = AudioFormat("audio/pcm", p.PCM16_RATE, p.PCM16_BYTES_PER_MS)
PCMU = AudioFormat("audio/pcmu", 8_000, 8)
SUPPORTED = ("audio/pcm", "audio/pcmu")


def format_of(spec: Any) -> AudioFormat:
    """The format a session's ``audio.input.format`` / ``output.format`` names (PCM if unset).

    Raises ``ValueError`` for anything else, which ``session.update`` reports as the API does.
    """
    if spec is None:
        return PCM
    if not isinstance(spec, dict):
        raise ValueError("format must be an object")
    kind = spec.get("type")
    if kind == "audio/pcmu":
        return PCMU
    if kind == "audio/pcm" and spec.get("rate", p.PCM16_RATE) == p.PCM16_RATE:
        return PCM
    raise ValueError(f"unsupported audio format {spec!r}")
