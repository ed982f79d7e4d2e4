"""Synthetic speech-like audio out, energy voice-activity detection in (PCM16 mono, any rate).

The offline model cannot speak or listen, but everything downstream of it can tell: players
buffer audio, relays count bytes, barge-in tests need a response that lasts long enough to be
interrupted, and browser tests feed a fake microphone. So replies get audio whose *length* follows
the text (one syllable-like burst per word) and input gets a simple RMS detector that reacts to
loudness the way ``server_vad`` reacts to speech.
"""

from __future__ import annotations

import math
import sys
import zlib
from array import array
from dataclasses import dataclass
from functools import lru_cache
from operator import mul

from protocol import realtime as p

MS_PER_WORD = 60
MIN_MS = 300
MAX_MS = 3000
WINDOW_MS = 20
_FULL_SCALE = 32768.0


@lru_cache(maxsize=64)
def synthesize(text: str, rate: int = p.PCM16_RATE) -> bytes:
    """PCM16 audio for ``text`` at ``rate``: ~60 ms per word (300 ms to 3 s), deterministic.

    Each word becomes a burst of a low voiced tone with two harmonics under a rise-and-fall
    envelope, followed by a short gap, which looks like speech to meters and VADs.
    """
    words = text.split() or [""]
    total_ms = max(MIN_MS, min(MAX_MS, len(words) * MS_PER_WORD))
    total = total_ms * rate // 1000
    per_word = max(1, total // len(words))
    seed = zlib.crc32(text.encode())
    samples = array("h", bytes(2 * total))
    for index in range(len(words)):
        start = index * per_word
        voiced = int(per_word * 0.8)  # the remaining 20 % is the gap between words
        pitch = 110.0 + ((seed >> (index % 24)) & 63)
        step = 2.0 * math.pi * pitch / rate
        for n in range(min(voiced, total - start)):
            envelope = math.sin(math.pi * n / voiced)
            phase = step * n
            value = math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.25 * math.sin(3 * phase)
            samples[start + n] = int(7000 * envelope * value)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def duration_ms(byte_count: int) -> int:
    return byte_count // p.PCM16_BYTES_PER_MS


def rms(pcm: bytes) -> float:
    """Root mean square of PCM16 little-endian samples, 0.0 (silence) to 1.0 (full scale)."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return 0.0
    return math.sqrt(sum(map(mul, samples, samples)) / len(samples)) / _FULL_SCALE


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" | "stop"
    ms: int  # audio_start_ms / audio_end_ms on the session's input-audio timeline


class EnergyVad:
    """``server_vad`` stand-in: RMS over 20 ms windows with a threshold and a silence hangover.

    ``threshold`` keeps the API's 0..1 meaning (higher = needs louder input); 0.5 maps to an RMS
    of 2 % of full scale (about -34 dBFS), well above room noise and well below speech.
    Speech starts after ``min_speech_ms`` of loud windows and is reported ``prefix_padding_ms``
    early (like the API); it stops after ``silence_duration_ms`` of quiet, reported at that point.
    ``rate`` is the PCM16 sample rate fed in: 24 kHz from pages, 8 kHz decoded from μ-law phones.
    """

    def __init__(
        self,
        *,
        rate: int = p.PCM16_RATE,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        min_speech_ms: int = 60,
    ) -> None:
        self.configure(threshold, prefix_padding_ms, silence_duration_ms)
        self.min_speech_ms = min_speech_ms
        self.window_bytes = rate * WINDOW_MS // 1000 * 2
        self.position_ms = 0  # audio seen so far, the API's timeline for audio_*_ms
        self.speaking = False
        self._pending = b""
        self._loud_ms = 0
        self._quiet_ms = 0

    def configure(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self.level = max(0.0, min(1.0, threshold)) * 0.04
        self.prefix_padding_ms = max(0, prefix_padding_ms)
        self.silence_duration_ms = max(WINDOW_MS, silence_duration_ms)

    def set_rate(self, rate: int) -> None:
        """A new input format: audio buffered at the old rate is dropped (it is a new stream)."""
        self.window_bytes = rate * WINDOW_MS // 1000 * 2
        self._pending = b""

    def reset(self) -> None:
        """Forget an utterance in progress (``input_audio_buffer.clear``/commit)."""
        self.speaking = False
        self._loud_ms = self._quiet_ms = 0

    def feed(self, pcm: bytes) -> list[VadEvent]:
        data = self._pending + pcm
        size = self.window_bytes
        usable = len(data) - len(data) % size
        self._pending = data[usable:]
        found: list[VadEvent] = []
        for offset in range(0, usable, size):
            loud = rms(data[offset : offset + size]) >= self.level
            self.position_ms += WINDOW_MS
            if event := self._step(loud):
                found.append(event)
        return found

    def _step(self, loud: bool) -> VadEvent | None:
        if not self.speaking:
            self._loud_ms = self._loud_ms + WINDOW_MS if loud else 0
            if self._loud_ms >= self.min_speech_ms:
                self.speaking, self._quiet_ms = True, 0
                began = self.position_ms - self._loud_ms
                return VadEvent("start", max(0, began - self.prefix_padding_ms))
            return None
        self._quiet_ms = 0 if loud else self._quiet_ms + WINDOW_MS
        if self._quiet_ms >= self.silence_duration_ms:
            self.speaking, self._loud_ms = False, 0
            return VadEvent("stop", self.position_ms)
        return None
