"""How often the offline recogniser gets phone numbers and names exactly right: a measurement.

Numbers and names are drawn at random (a seed per run), said by espeak-ng in several voices and
speeds, and decoded as the offline model hears them after the host asked for them: the page's
24 kHz PCM16, and the phone's 8 kHz μ-law (sox converts; espeak-ng writes 22,050 Hz). A number
counts when all 8 digits come out right; a name when first name and surname both do. Nothing
here is tuned to the draw: the same code serves the test suite (a small random sample) and
``python -m bench speech --matrix`` (every voice × speed cell). Needs the ``espeak-ng`` and
``sox`` commands (Debian packages), which only measurements use.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date

from protocol import g711

from . import asr_worker
from .answers import answer_of
from .dialog import Slots
from .intents import parse
from .names import FIRST_NAMES, SURNAMES
from .transcript import normalise
from .vocabulary import DIGITS

__all__ = ["PATHS", "SPEEDS", "VOICES", "Sample", "Score", "draw", "score", "synthesize"]

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-us+f3", "en-029", "en-gb-x-rp")
SPEEDS = (130, 160, 190)
PATHS = {"page": 24_000, "phone": 8_000}
COMMAND_TIMEOUT_S = 30.0
_TODAY = date(2026, 6, 10)


@dataclass(frozen=True)
class Sample:
    """One utterance to say and hear: a ``number`` or a ``name``, and what it must come out as."""

    kind: str
    voice: str
    speed: int
    text: str
    expected: str


@dataclass(frozen=True)
class Score:
    sample: Sample
    path: str
    heard: str  # the parser-ready text
    right: bool
    cpu_s: float
    audio_s: float
    general_right: bool  # what the general booking model alone would have made of it


def spoken_number(digits: str, rng: random.Random) -> str:
    """How a person reads a number: two groups of four, "oh" for zero now and then, "double"
    for a repeated digit now and then."""
    groups = []
    for group in (digits[:4], digits[4:]):
        words: list[str] = []
        index = 0
        while index < len(group):
            word = "oh" if group[index] == "0" and rng.random() < 0.5 else DIGITS[int(group[index])]
            if index + 1 < len(group) and group[index + 1] == group[index] and rng.random() < 0.5:
                words.append(f"double {word}")
                index += 2
            else:
                words.append(word)
                index += 1
        groups.append(" ".join(words))
    lead = rng.choice(("", "", "it's ", "my number is "))
    return lead + ", ".join(groups) + "."


def draw(
    seed: int, per_cell: int, voices: Iterable[str] = VOICES, speeds: Iterable[int] = SPEEDS
) -> list[Sample]:
    """``per_cell`` random 8-digit numbers and names for each voice × speed."""
    rng = random.Random(seed)
    out = []
    for voice in voices:
        for speed in speeds:
            for _ in range(per_cell):
                digits = "".join(rng.choice("0123456789") for _ in range(8))
                out.append(Sample("number", voice, speed, spoken_number(digits, rng), digits))
                name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}".title()
                lead = rng.choice(("", "", "my name is ", "it's "))
                out.append(Sample("name", voice, speed, f"{lead}{name}.", name))
    return out


def synthesize(text: str, voice: str, speed: int, rate: int) -> bytes:
    """PCM16 mono as the model receives it: 24 kHz for the page, 8 kHz μ-law (decoded) for the
    phone."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
    ).stdout
    encoding = ["-e", "mu-law", "-b", "8"] if rate == 8_000 else ["-e", "signed", "-b", "16"]
    raw = subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "raw", "-r", str(rate), *encoding, "-c", "1", "-"],
        input=wav,
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
    ).stdout
    return g711.decode(raw) if rate == 8_000 else raw


def score(sample: Sample, path: str) -> Score:
    """Say ``sample``, hear it as the answer to the host's question, and check it."""
    rate = PATHS[path]
    pcm = synthesize(sample.text, sample.voice, sample.speed, rate)
    listen = "phone" if sample.kind == "number" else "name"
    words, heard_as, general, cpu = asr_worker.decode_both(pcm, rate, listen)
    text = normalise(words)
    right = _got(sample, text, heard_as) == sample.expected
    general_right = _got(sample, normalise(general), "general") == sample.expected
    return Score(sample, path, text, right, cpu, len(pcm) / 2 / rate, general_right)


def _got(sample: Sample, text: str, heard_as: str) -> str | None:
    parsed = answer_of(parse(text, _TODAY), text, heard_as, Slots())
    return parsed.phone if sample.kind == "number" else parsed.name


def _score_both(sample: Sample) -> list[Score]:
    return [score(sample, path) for path in PATHS]


def run(samples: list[Sample], workers: int = 1) -> Iterator[Score]:
    """Score every sample on both paths, in ``workers`` processes (each builds its decoders)."""
    if workers <= 1:
        for sample in samples:
            yield from _score_both(sample)
        return
    with ProcessPoolExecutor(workers, initializer=asr_worker.init) as pool:
        for scores in pool.map(_score_both, samples, chunksize=4):
            yield from scores
