"""Write the spoken-request fixtures with Debian's espeak-ng (a development tool, not a dependency).

Run once when the list below changes; the WAVs are committed, so tests and benchmarks never need
a speech synthesiser. Each fixture is one caller turn in one voice at one speed, 16 kHz mono PCM16
(what the page's microphone test plays; the model hears it at 24 kHz after the page resamples),
or 8 kHz for the phone path (the tests turn it into μ-law). espeak-ng writes 22,050 Hz, so the
script resamples with a windowed-sinc filter (slow, exact enough, and only run here).

    apt-get install espeak-ng
    python tests/data/speech/make_fixtures.py      # rewrites tests/data/speech/*.wav

``FIXTURES`` is also read by the tests and by ``python -m bench speech``: the sentence each WAV
says and the slots the intent parser should recover from it.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import wave
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BOOK = (
    "Book a table for four tomorrow at seven p m. "
    "My name is Ada Lovelace, phone nine eight two zero seven two seven two."
)
BOOK_SLOTS = {
    "intent": "book",
    "party_size": 4,
    "time": "19:00",
    "date": "+1",
    "name": "Ada Lovelace",
    "phone": "98207272",
}


@dataclass(frozen=True)
class Fixture:
    """One WAV: what is said, how, and the slots it should give (``date`` "+N" = today + N)."""

    name: str
    text: str
    voice: str
    speed: int  # words per minute
    rate: int  # 16 kHz (page) or 8 kHz (phone)
    slots: dict[str, Any] = field(default_factory=dict)
    # The slots the offline model recovers (README "Speech"; asserted by tests/test_speech.py).
    recovered: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return HERE / f"{self.name}.wav"


EVERY_SLOT = ("intent", "party_size", "time", "date", "name", "phone")
NAME_PHONE = "My name is Alan Turing and my phone number is six five five five one two three four."
NAME_PHONE_SLOTS = {"name": "Alan Turing", "phone": "65551234"}

FIXTURES = (
    # espeak-ng's Klatt and "f2" variants: the voices pocketsphinx hears best.
    Fixture("book-f2-130", BOOK, "en-us+f2", 130, 16_000, BOOK_SLOTS, EVERY_SLOT),
    Fixture("book-f2-160", BOOK, "en-us+f2", 160, 16_000, BOOK_SLOTS, EVERY_SLOT[:-1]),
    Fixture("book-klatt-145", BOOK, "en-us+klatt", 145, 16_000, BOOK_SLOTS, EVERY_SLOT),
    Fixture("book-klatt3-170", BOOK, "en-us+klatt3", 170, 16_000, BOOK_SLOTS, EVERY_SLOT),
    Fixture(
        "friday-f2-140",
        "I'd like a table for two on Friday at eight thirty.",
        "en-us+f2",
        140,
        16_000,
        {"intent": "book", "party_size": 2, "date": "friday", "time": "20:30"},
        ("intent", "party_size", "date", "time"),
    ),
    Fixture(
        "december-klatt-150",
        "Reserve a table for six on December the twenty fourth at seven.",
        "en-us+klatt",
        150,
        16_000,
        {"intent": "book", "party_size": 6, "date": "12-24", "time": "19:00"},
        ("intent", "party_size", "date", "time"),
    ),
    Fixture("name-phone-f2-150", NAME_PHONE, "en-us+f2", 150, 16_000, NAME_PHONE_SLOTS),
    Fixture(
        "lookup-f2-150",
        "Look up my reservation please.",
        "en-us+f2",
        150,
        16_000,
        {"intent": "lookup"},
        ("intent",),
    ),
    Fixture(
        "spelled-f2-130",
        "My name is Grace Hopper, spelled H O P P E R.",
        "en-us+f2",
        130,
        16_000,
        {"name": "Grace Hopper"},
        ("name",),
    ),
    # espeak-ng's default voices: much harder for the en-US acoustic model (see the README).
    Fixture(
        "book-us-150", BOOK, "en-us", 150, 16_000, BOOK_SLOTS, ("intent", "party_size", "date")
    ),
    Fixture("book-gb-175", BOOK, "en-gb", 175, 16_000, BOOK_SLOTS, ("intent", "party_size")),
    # The phone path: 8 kHz, turned into μ-law by whoever plays it.
    Fixture(
        "book-phone-f2-150",
        BOOK,
        "en-us+f2",
        150,
        8_000,
        BOOK_SLOTS,
        ("intent", "party_size", "date"),
    ),
    Fixture("name-phone-phone-klatt-150", NAME_PHONE, "en-us+klatt", 150, 8_000, NAME_PHONE_SLOTS),
)

TAPS = 24  # filter half-width, in input samples


def espeak(text: str, voice: str, speed: int) -> tuple[array, int]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "say.wav")
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(out), text], check=True
        )
        with wave.open(str(out)) as wav:
            rate = wav.getframerate()
            samples = array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples, rate


def resample(samples: array, source: int, target: int) -> array:
    """Windowed-sinc (Hann) resampling with the cut-off below both Nyquist frequencies."""
    cutoff = min(source, target) / 2 * 0.9
    ratio = source / target
    out = array("h")
    for index in range(int(len(samples) / ratio)):
        centre = index * ratio
        total = 0.0
        for k in range(math.floor(centre) - TAPS, math.floor(centre) + TAPS + 1):
            if 0 <= k < len(samples):
                x = k - centre
                window = 0.5 + 0.5 * math.cos(math.pi * x / (TAPS + 1))
                arg = 2 * cutoff / source * x
                sinc = 1.0 if x == 0 else math.sin(math.pi * arg) / (math.pi * arg)
                total += samples[k] * 2 * cutoff / source * sinc * window
        out.append(max(-32768, min(32767, round(total))))
    return out


def trim(samples: array, rate: int, level: int = 300, keep_ms: int = 150) -> array:
    """Drop leading and trailing silence, keeping ``keep_ms`` of it at each end."""
    loud = [i for i, s in enumerate(samples) if abs(s) > level]
    if not loud:
        return samples
    keep = rate * keep_ms // 1000
    return samples[max(0, loud[0] - keep) : loud[-1] + keep]


def write(fixture: Fixture) -> Path:
    samples, rate = espeak(fixture.text, fixture.voice, fixture.speed)
    samples = trim(resample(samples, rate, fixture.rate), fixture.rate)
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(fixture.path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(fixture.rate)
        wav.writeframes(samples.tobytes())
    return fixture.path


def read(path: Path) -> tuple[bytes, int]:
    """A fixture's PCM16 little-endian samples and rate."""
    with wave.open(str(path)) as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()


def read_as(fixture: Fixture, rate: int) -> bytes:
    """A fixture's samples at ``rate`` by linear interpolation: 16 → 24 kHz is what the page's
    resampler does to a 16 kHz microphone (and all tests need: they only ever go up)."""
    pcm, source = read(fixture.path)
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    out = array("h")
    for index in range(len(samples) * rate // source):
        x = index * source / rate
        k = int(x)
        after = samples[k + 1] if k + 1 < len(samples) else samples[k]
        out.append(int(samples[k] + (after - samples[k]) * (x - k)))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


if __name__ == "__main__":
    for fixture in FIXTURES:
        print(write(fixture))
