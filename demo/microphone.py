"""The page demo's microphone: a WAV file in, 20 ms frames of 24 kHz PCM16 out.

`--wav FILE` streams a recording as a live microphone would, so the demo can prove a spoken
booking end to end. Any rate is resampled linearly (plenty for a VAD, and needs no numpy).
"""

from __future__ import annotations

import sys
import wave
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

from demo.steps import DemoFailed
from protocol import realtime as p

FRAME_MS = 20  # what a browser's audio worklet sends; small frames let VAD react sooner
FRAME_BYTES = FRAME_MS * p.PCM16_BYTES_PER_MS
TRAILING_SILENCE_MS = 800  # a real microphone keeps going after the file: lets VAD end the turn


def resample_linear(samples: Sequence[int], src_rate: int, dst_rate: int) -> array[int]:
    """Linear interpolation between neighbours: plenty for a VAD, and needs no numpy."""
    if src_rate == dst_rate or not samples:
        return array("h", samples)
    count = max(1, round(len(samples) * dst_rate / src_rate))
    step = src_rate / dst_rate
    last = len(samples) - 1
    out = array("h", bytes(2 * count))
    for index in range(count):
        position = index * step
        left = min(int(position), last)
        right = min(left + 1, last)
        fraction = position - left
        out[index] = round(samples[left] + (samples[right] - samples[left]) * fraction)
    return out


def read_wav(path: Path) -> tuple[bytes, int, float]:
    """PCM16 little-endian mono at 24 kHz, the file's own rate, and its duration in seconds."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise DemoFailed(f"cannot read {path}: {exc}") from None
    if channels != 1 or width != 2:
        raise DemoFailed(
            f"{path} is {channels}-channel {8 * width}-bit audio; the demo streams 16-bit mono"
        )
    samples = array("h")
    samples.frombytes(raw[: len(raw) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian on disk, and on the wire too
    converted = resample_linear(samples, rate, p.PCM16_RATE)
    if sys.byteorder == "big":
        converted.byteswap()
    return converted.tobytes(), rate, len(samples) / rate if rate else 0.0


def load_microphone(path: Path) -> tuple[bytes, str]:
    """The file's audio ready to stream, and the line that announces it."""
    pcm, rate, seconds = read_wav(path)
    resampled = "" if rate == p.PCM16_RATE else f", resampled {rate} → {p.PCM16_RATE} Hz"
    return pcm, f"[streaming {path.name}: {seconds:.2f} s{resampled}]"


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> Iterator[bytes]:
    """Fixed 20 ms frames; the last one padded with silence so each lasts the same."""
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start : start + frame_bytes]
        yield chunk + bytes(frame_bytes - len(chunk))
