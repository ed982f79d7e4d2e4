"""The recogniser's worker process: pocketsphinx with a booking-domain language model.

PocketSphinx's ``process_raw`` holds the GIL for the whole utterance (measured: a thread decoding
1.5 s of speech left the event loop's thread a 205 ms gap), so decoding runs in worker processes
(``speech.Recognizer``); this module is what they import. ``init`` builds the domain trigram model
from ``vocabulary.corpus()`` with pocketsphinx's own ARPA builder and a dictionary cut from its
bundled CMUdict, once per process (about 0.2 s), then keeps one decoder per input rate.

The en-US acoustic model is 16 kHz wideband. Page audio (24 kHz) goes in as is: the front end
computes the same mel features from any rate given a large enough FFT. Phone audio (8 kHz μ-law)
has nothing above 4 kHz and the model's filters reach 6.8 kHz, which pocketsphinx refuses at an
8 kHz rate, so it is upsampled 2× (linear interpolation) and decoded as 16 kHz.
"""

from __future__ import annotations

import io
import itertools
import sys
import tempfile
import time
from array import array
from pathlib import Path

from pocketsphinx import Decoder, get_model_path
from pocketsphinx.lm import ArpaBoLM

from . import vocabulary

__all__ = ["decode", "init"]

# Front-end settings per input rate; the FFT must cover a 25.6 ms window.
_RATES = {24_000: {"samprate": 24_000, "nfft": 1024}, 16_000: {"samprate": 16_000, "nfft": 512}}
_decoders: dict[int, Decoder] = {}


def _language_model() -> str:
    # Little mass for unseen word sequences (the builder's default is half): measured over
    # espeak-ng fixtures, word accuracy 0.65 → 0.69, mostly fewer stray words inside numbers.
    model = ArpaBoLM(text="\n".join(vocabulary.corpus()), add_start=True, discount_mass=0.1)
    model.compute()
    out = io.StringIO()
    model.write(out)
    return out.getvalue()


def _dictionary(words: set[str]) -> str:
    """The bundled CMUdict's entries (alternates included) for ``words`` only: loads in ms."""
    lines = []
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as full:
        for line in full:
            head = line.split(" ", 1)[0]
            if head.split("(", 1)[0] in words:
                lines.append(line)
    return "".join(lines)


def init() -> None:
    """Build the decoders (the worker pool's initializer; also safe to call again)."""
    if _decoders:
        return
    with tempfile.TemporaryDirectory(prefix="offline-asr-") as folder:
        lm, dic = Path(folder, "booking.lm"), Path(folder, "booking.dict")
        lm.write_text(_language_model(), encoding="utf-8")
        dic.write_text(_dictionary(vocabulary.words()), encoding="utf-8")
        for rate, front_end in _RATES.items():
            _decoders[rate] = Decoder(lm=str(lm), dict=str(dic), loglevel="FATAL", **front_end)


def upsample2(pcm: bytes) -> bytes:
    """PCM16 at rate r → 2r, each new sample halfway between its neighbours."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()
    out = array("h", bytes(4 * len(samples)))
    out[0::2] = samples
    if samples:
        out[1:-1:2] = array("h", ((a + b) >> 1 for a, b in itertools.pairwise(samples)))
        out[-1] = samples[-1]
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def decode(pcm: bytes, rate: int) -> tuple[str, float]:
    """Words heard in one utterance of PCM16 mono at ``rate`` (24, 16 or 8 kHz), and the CPU
    seconds it took (for benchmarks)."""
    started = time.process_time()
    init()
    if rate == 8_000:
        pcm, rate = upsample2(pcm), 16_000
    decoder = _decoders.get(rate)
    if decoder is None:
        raise ValueError(f"no decoder for {rate} Hz")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return (hypothesis.hypstr if hypothesis else ""), time.process_time() - started
