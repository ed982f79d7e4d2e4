"""The recogniser's worker process: pocketsphinx with a booking-domain model and answer grammars.

PocketSphinx's ``process_raw`` holds the GIL for the whole utterance (measured: a thread decoding
1.5 s of speech left the event loop's thread a 205 ms gap), so decoding runs in worker processes
(``speech.Recognizer``); this module is what they import. ``init`` builds, once per process, the
domain trigram model from ``vocabulary.corpus()`` with pocketsphinx's own ARPA builder and a
dictionary cut from its bundled CMUdict, then keeps one decoder per input rate; the searches of
``grammars.Listen`` (the digits grammar; the names, spelling and read-back models, built the
same way) are added to it, the models on the first question that needs each (0.2 s at most).

``decode`` listens for what the host asked: with the question's grammar and with the general
model, keeping the general model's words when they show the caller answered something else
(two words of ``grammars.OFF_SCRIPT``), when the answer's search heard nothing, or when a
phone number came out shorter than a group of one (callers pause between groups, so a turn
may hold half a number: ``conversation`` joins the halves).

The en-US acoustic model is 16 kHz wideband (filters to 6.8 kHz). Page audio (24 kHz) goes in as
is: the front end computes the same mel features from any rate given a large enough FFT. Phone
audio (8 kHz μ-law) has nothing above 4 kHz; pocketsphinx refuses filters above the Nyquist
frequency, and filters moved to fit 4 kHz no longer match the model's, so it is upsampled 2×
(linear interpolation) and decoded as 16 kHz: the top filters see silence, the rest match
(measured against 8 kHz features in ``docs/offline-speech.md``).
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

from . import grammars, vocabulary
from .grammars import Listen

__all__ = ["decode", "decode_both", "init"]

# Front-end settings per input rate; the FFT must cover a 25.6 ms window.
_RATES = {24_000: {"samprate": 24_000, "nfft": 1024}, 16_000: {"samprate": 16_000, "nfft": 512}}
# Fewer inserted words: a grammar of repeatable digits otherwise hears "one two" in a "two"
# (measured on espeak-ng digits, exact 8-digit numbers 21 % → 37 %; the default is 0.65).
_WORD_INSERTION = 1e-3
_GENERAL = "_default"  # pocketsphinx's name for the search built from ``lm``
_EXTRA_WORDS = "z. Z EH D\n"  # "zed", as most of the world says the last letter
_decoders: dict[int, Decoder] = {}
# The general model hears a stray "book" or "monday" in digits now and then; two such words
# are a caller who answered something else ("a table for two tomorrow", "cancel my booking").
_OFF_SCRIPT_WORDS = 2
_DIGIT_WORDS = frozenset(vocabulary.DIGITS) | {"oh"}


def _language_model(sentences: list[str], discount_mass: float = 0.1) -> str:
    # Little mass for unseen word sequences (the builder's default is half): measured over
    # espeak-ng fixtures, word accuracy 0.65 → 0.69, mostly fewer stray words inside numbers.
    model = ArpaBoLM(text="\n".join(sentences), add_start=True, discount_mass=discount_mass)
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
    return "".join(lines) + _EXTRA_WORDS.replace("z. ", "z.(9) ")


_files: dict[str, str] = {}  # the general model's and dictionary's text, built once per process
_searches: dict[int, set[str]] = {}  # per decoder, the answer models added to it so far


def init() -> None:
    """Build the general model and the page's decoder (the worker pool's initializer; also safe
    to call again). The 16 kHz decoder (the phone's) is built on its first utterance, and each
    answer model (names, spelling, the read-back) on the first question that needs it."""
    if not _files:
        _files["general"] = _language_model(vocabulary.corpus())
        _files["dict"] = _dictionary(vocabulary.words() | grammars.words())
    _decoder(24_000)


def _decoder(rate: int) -> Decoder:
    if rate in _decoders:
        return _decoders[rate]
    front_end = _RATES.get(rate)
    if front_end is None:
        raise ValueError(f"no decoder for {rate} Hz")
    with tempfile.TemporaryDirectory(prefix="offline-asr-") as folder:
        lm, dic = Path(folder, "general.lm"), Path(folder, "booking.dict")
        lm.write_text(_files["general"], encoding="utf-8")
        dic.write_text(_files["dict"], encoding="utf-8")
        decoder = Decoder(
            lm=str(lm), dict=str(dic), loglevel="FATAL", wip=_WORD_INSERTION, **front_end
        )
    decoder.add_jsgf_string(Listen.PHONE.value, grammars.phone_jsgf())
    _decoders[rate], _searches[rate] = decoder, {Listen.PHONE.value}
    return decoder


def _search(rate: int, listen: Listen) -> str:
    """The name of ``listen``'s search in the decoder for ``rate``, added on first use."""
    if listen.value not in _searches[rate]:
        if listen.value not in _files:
            # Half the mass for unseen pairs: any first name goes with any surname.
            _files[listen.value] = _language_model(grammars.corpus(listen), 0.5)
        with tempfile.TemporaryDirectory(prefix="offline-asr-") as folder:
            path = Path(folder, f"{listen.value}.lm")
            path.write_text(_files[listen.value], encoding="utf-8")
            _decoders[rate].add_lm_file(listen.value, str(path))
        _searches[rate].add(listen.value)
    return listen.value


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


def _run(decoder: Decoder, search: str, pcm: bytes) -> str:
    decoder.activate_search(search)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis else ""


def choose(listen: Listen, answer: str, general: str) -> Listen:
    """Whose words to keep: the question's grammar's (``answer``) or the general model's."""
    if not answer or sum(w in grammars.OFF_SCRIPT for w in general.split()) >= _OFF_SCRIPT_WORDS:
        return Listen.GENERAL
    if listen is Listen.PHONE and sum(w in _DIGIT_WORDS for w in answer.split()) < 3:
        return Listen.GENERAL  # not even a group of a number: heard badly, so ask again
    return listen


def decode(pcm: bytes, rate: int, listen: str = Listen.GENERAL) -> tuple[str, str, float]:
    """Words heard in one utterance of PCM16 mono at ``rate`` (24, 16 or 8 kHz), listening for
    ``listen``; the search whose words they are; and the CPU seconds it took (for benchmarks)."""
    words, used, _, cpu = decode_both(pcm, rate, listen)
    return words, used, cpu


def decode_both(pcm: bytes, rate: int, listen: str) -> tuple[str, str, str, float]:
    """``decode``, with the general model's words too (the accuracy matrix compares them)."""
    started = time.process_time()
    init()
    wanted = Listen(listen)
    if rate == 8_000:
        pcm, rate = upsample2(pcm), 16_000
    decoder = _decoder(rate)
    general = _run(decoder, _GENERAL, pcm)
    used, words = Listen.GENERAL, general
    if wanted is not Listen.GENERAL:
        answer = _run(decoder, _search(rate, wanted), pcm)
        used = choose(wanted, answer, general)
        words = answer if used is wanted else general
    return words, used.value, general, time.process_time() - started
