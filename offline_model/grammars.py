"""What the caller may say next, per question the host can ask: a grammar or a small model.

A caller asked "what phone number?" answers with digits; asked to spell, with letters. The
general booking language model spreads its bets over every sentence a caller might say, so
"nine eight two zero" comes back as "i do zero"; a grammar that only holds digits cannot drift
into words. Names and spellings are too many alternatives for pocketsphinx's grammar search, so
they get language models of their own, trained on the census name lists (``names``) and their
spellings. ``asr_worker`` decodes with the search of the question just asked (``Listen``) and
with the general model, and keeps the general model's words when they show the caller said
something else (``OFF_SCRIPT``). Pure text: no pocketsphinx import, so tests read them.

The letters of a spelling are the dictionary's "a." … "z." entries (said as the letter's name,
never "a" as in "a table"); ``transcript`` turns them, and the NATO words, back into letters.
"""

from __future__ import annotations

from enum import StrEnum

from .names import FIRST_NAMES, SURNAMES
from .vocabulary import DIGITS, LETTERS, MONTH_NAMES

__all__ = ["NATO", "OFF_SCRIPT", "Listen", "corpus", "phone_jsgf", "spelled", "words"]


class Listen(StrEnum):
    """What the host just asked for, so what the recogniser listens for."""

    GENERAL = "general"  # anything: the booking language model
    PHONE = "phone"  # "what phone number?"
    NAME = "name"  # "what name?"
    SPELLING = "spelling"  # "could you spell that?"
    CONFIRM = "confirm"  # the read-back: "yes", or "no, it's …" with a name, number or spelling


NATO = {
    "alpha": "a", "alfa": "a", "bravo": "b", "charlie": "c", "delta": "d", "echo": "e",
    "foxtrot": "f", "golf": "g", "hotel": "h", "india": "i", "juliet": "j", "kilo": "k",
    "lima": "l", "mike": "m", "november": "n", "oscar": "o", "papa": "p", "quebec": "q",
    "romeo": "r", "sierra": "s", "tango": "t", "uniform": "u", "victor": "v", "whiskey": "w",
    "whisky": "w", "x-ray": "x", "yankee": "y", "zulu": "z",
}  # fmt: skip
SPOKEN_LETTERS = tuple(f"{letter}." for letter in LETTERS)

# Words only the general model's sentences have: heard there, the caller went off script.
OFF_SCRIPT = frozenset(
    """book table reservation booking cancel change move tomorrow today tonight people guests
    o'clock look find available free monday tuesday wednesday thursday friday saturday sunday
    goodbye thank thanks hello transfer""".split()
) | frozenset(MONTH_NAMES)

_YES = ("yes", "yes please", "yeah", "yep", "correct", "that's right", "that's correct", "right")
_PHONE_LEAD = "it's | it is | my number is | my phone number is | the number is | that's"
_NAME_LEAD = ("my name is", "it's", "the name is", "under", "this is")


def phone_jsgf() -> str:
    """Digits, "oh", "double"/"triple", an optional "plus" and country code: a small finite
    grammar, which pocketsphinx searches fast (a grammar of thousands of names it does not:
    a minute per utterance, so names and letters are language models below)."""
    digit = " | ".join((*DIGITS, "oh"))
    return (
        "#JSGF V1.0;\ngrammar phone;\n"
        f"<digit> = {digit};\n"
        "<digits> = (<digit> | double <digit> | triple <digit>)+;\n"
        f"public <answer> = [yes] [{_PHONE_LEAD}] [plus <digit> [<digit>] [<digit>]] <digits>;\n"
    )


def spelled(word: str, nato_every: int = 0, index: int = 0) -> str:
    """ "lee" → "l. e. e.", or in the NATO alphabet ("lima echo echo") every ``nato_every``th."""
    if nato_every and index % nato_every == 0:
        return " ".join(_NATO_OF[letter] for letter in word)
    return " ".join(f"{letter}." for letter in word)


_NATO_OF = {letter: word for word, letter in reversed(NATO.items())}


def _full_names() -> list[str]:
    """Every first name with a surname and every surname with a first name, deterministic."""
    firsts = [f"{first} {SURNAMES[i * 7 % len(SURNAMES)]}" for i, first in enumerate(FIRST_NAMES)]
    lasts = [f"{FIRST_NAMES[i * 11 % len(FIRST_NAMES)]} {last}" for i, last in enumerate(SURNAMES)]
    return firsts + lasts


def _spellings() -> list[str]:
    return [spelled(name, 5, i) for i, name in enumerate(SURNAMES[:1500] + FIRST_NAMES[:500])]


def corpus(listen: Listen) -> list[str]:
    """Training sentences for the language model of ``listen`` (``NAME``, ``SPELLING``,
    ``CONFIRM``): names from the census lists, their spellings, the read-back's answers."""
    if listen is Listen.SPELLING:
        return [*_spellings(), *(f"it's {s}" for s in _spellings()[::10])]
    names = _full_names()
    said = [
        f"{_NAME_LEAD[i % len(_NAME_LEAD)]} {name}" if i % 3 else name
        for i, name in enumerate(names)
    ]
    said += [*FIRST_NAMES, *SURNAMES]
    said += [
        f"{name.split()[-1]} spelled {spelled(name.split()[-1], 4, i)}"
        for i, name in enumerate(names[::8])
    ]
    if listen is Listen.NAME:
        return said
    digits = (*DIGITS, "oh")
    phones = [" ".join(digits[(i * 7 + k * (i + 3)) % 11] for k in range(8)) for i in range(60)]
    return [
        *_YES, "no", "no thank you", "yes please book it", "that's right thank you",
        *(f"no {s}" for s in said[::4]), *(f"no it's {p}" for p in phones),
        *(f"no the number is {p}" for p in phones), *phones,
    ]  # fmt: skip


def words() -> set[str]:
    """Every word a grammar or answer model can output (the dictionary must hold each one)."""
    out = {*DIGITS, "oh", "double", "triple", "plus", "yes", *_PHONE_LEAD.replace("|", " ").split()}
    for listen in (Listen.NAME, Listen.SPELLING, Listen.CONFIRM):
        out |= {w for sentence in corpus(listen) for w in sentence.split()}
    return out
