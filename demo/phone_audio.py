"""The phone demo's caller audio: G.711 μ-law at 8 kHz, from a WAV file or made up.

Twilio sends the caller's voice as μ-law bytes, 160 per 20 ms. `audioop` is gone from Python
3.13; the offline model's G.711 codec (`protocol.g711`, checked against the ITU-T
reference points in its tests) encodes it, so there is one codec in the project. The made-up
voice is what the offline model's VAD takes for speech: voiced bursts (a low tone with two
harmonics under a rise-and-fall envelope) with short gaps, loud enough for any energy detector.
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path

from protocol import g711

RATE = 8_000
BYTES_PER_MS = 8  # one μ-law byte per sample at 8 kHz
FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS
SILENCE = 0xFF  # μ-law for 0


class AudioError(Exception):
    """A file the demo cannot play as a caller's voice; the message says why."""


def encode(samples: array[int] | list[int]) -> bytes:
    """PCM16 samples (ints) as μ-law bytes."""
    pcm = array("h", samples)
    if sys.byteorder == "big":
        pcm.byteswap()  # the codec takes little-endian PCM16, as WAV and the wire carry it
    return g711.encode(pcm.tobytes())


def resample(samples: array[int], src_rate: int, dst_rate: int = RATE) -> list[int]:
    """Linear interpolation: enough for a VAD and a recogniser's 8 kHz front end."""
    if src_rate == dst_rate or not samples:
        return list(samples)
    count = max(1, round(len(samples) * dst_rate / src_rate))
    step, last = src_rate / dst_rate, len(samples) - 1
    out = []
    for index in range(count):
        position = index * step
        left = min(int(position), last)
        right = min(left + 1, last)
        out.append(round(samples[left] + (samples[right] - samples[left]) * (position - left)))
    return out


def speech_like(ms: int, words_ms: int = 240) -> bytes:
    """`ms` of voiced bursts (80 % of each word) and gaps, as μ-law."""
    total = ms * RATE // 1000
    per_word = words_ms * RATE // 1000
    voiced = int(per_word * 0.8)
    samples = [0] * total
    for start in range(0, total, per_word):
        step = 2 * math.pi * (120 + 15 * (start // per_word % 4)) / RATE
        for n in range(min(voiced, total - start)):
            envelope = math.sin(math.pi * n / voiced)
            phase = step * n
            value = math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.25 * math.sin(3 * phase)
            samples[start + n] = int(9000 * envelope * value)
    return encode(samples)


def read_wav(path: Path) -> tuple[bytes, float]:
    """A 16-bit mono WAV as 8 kHz μ-law, and its duration in seconds."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read {path}: {exc}") from None
    if channels != 1 or width != 2:
        raise AudioError(f"{path} is {channels}-channel {8 * width}-bit audio; use 16-bit mono")
    samples = array("h")
    samples.frombytes(raw[: len(raw) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    return encode(resample(samples, rate)), len(samples) / rate if rate else 0.0


def frames(audio: bytes) -> Iterator[bytes]:
    """20 ms frames of 160 bytes; the last one padded with silence."""
    for start in range(0, len(audio), FRAME_BYTES):
        chunk = audio[start : start + FRAME_BYTES]
        yield chunk + bytes([SILENCE]) * (FRAME_BYTES - len(chunk))
