"""The booking domain's spoken vocabulary, and sentences that teach the recogniser how it is used.

A general English language model hears "book a table for four" as "oh the goal for for": it
spreads its bets over 130,000 words. Callers of a restaurant use a few hundred: numbers, dates,
times, party sizes, a handful of verbs, and their names. So the recogniser decodes with a small
trigram model trained on sentences built here from the intent parser's own vocabulary
(``intents.NUMBER_WORDS``, ``WEEKDAYS``, ``MONTHS``), which keeps what it can hear and what the
parser understands the same list.

Names are open vocabulary. Two answers, both here: a list of common first names and surnames
(each in the pronouncing dictionary), and spelling ("Lovelace, spelled L O V E L A C E"), which
works for any name made of letters. Pure data and a generator: no pocketsphinx import.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from .intents import NUMBER_WORDS, WEEKDAYS

__all__ = [
    "DIGITS",
    "FIRST_NAMES",
    "LETTERS",
    "MONTH_NAMES",
    "ORDINALS",
    "SURNAMES",
    "TENS",
    "corpus",
    "words",
]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_ORDINAL_UNITS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
    "seventeenth", "eighteenth", "nineteenth",
)  # fmt: skip
ORDINALS: dict[str, int] = {word: n for n, word in enumerate(_ORDINAL_UNITS, start=1)}
ORDINALS |= {"twentieth": 20, "thirtieth": 30}
LETTERS = tuple("abcdefghijklmnopqrstuvwxyz")

# Common first names and surnames of callers, every one in the pronouncing dictionary.
FIRST_NAMES = tuple(
    """ada alan alice anna ben bob charles daniel david elizabeth emma ethan grace james
    jennifer jessica john joseph karen kate laura linda lucas maria mark mary mia michael
    ming noah olivia patricia paul peter richard robert sam sarah sophia susan thomas tom
    wei william ahmed ali fatima raj""".split()
)
SURNAMES = tuple(
    """adams anderson baker brown campbell carter chen clark davis evans garcia green harris
    hill hopper jackson johnson jones king kumar lee lewis lim lovelace martin miller
    mitchell moore nelson ng robinson scott singh smith tan taylor thompson turing walker
    wang white wilson wong wright young""".split()
)

_PARTY = tuple(w for w, n in NUMBER_WORDS.items() if n <= 12)
_HOURS = tuple(w for w, n in NUMBER_WORDS.items() if n <= 12)
_MINUTES = ("fifteen", "thirty", "forty five", "o'clock")
_ORDINAL_DAYS = (*_ORDINAL_UNITS, "twentieth", *(f"twenty {o}" for o in _ORDINAL_UNITS[:9]),
                 "thirtieth", "thirty first")  # fmt: skip
_DAY_WORDS = ("today", "tonight", "tomorrow", "the day after tomorrow", "this evening")


def _dates() -> Iterator[str]:
    yield from _DAY_WORDS
    for day in WEEKDAYS:
        yield day
        yield f"on {day}"
        yield f"next {day}"
        yield f"this {day}"
    for month, ordinal in zip(itertools.cycle(MONTH_NAMES), _ORDINAL_DAYS, strict=False):
        yield f"on {month} {ordinal}"
        yield f"on the {ordinal} of {month}"
    for month in MONTH_NAMES:
        yield f"{month} the {_ORDINAL_DAYS[MONTH_NAMES.index(month) * 2 % 31]}"


def _times() -> Iterator[str]:
    for hour in _HOURS:
        yield hour
        yield f"{hour} p m"
        yield f"{hour} o'clock"
        for minutes in _MINUTES[:3]:
            yield f"{hour} {minutes}"
            yield f"{hour} {minutes} p m"
        yield f"{hour} a m"
        yield f"half past {hour}"
    yield from ("noon", "midday")


def _phones() -> Iterator[str]:
    """Eight-digit numbers said digit by digit (with "oh" for zero now and then)."""
    for start in range(40):
        digits = [DIGITS[(start * 7 + i * (start + 3)) % 10] for i in range(8)]
        if start % 5 == 0:
            digits = ["oh" if d == "zero" else d for d in digits]
        yield " ".join(digits)


def _names() -> Iterator[str]:
    for first, last in zip(itertools.cycle(FIRST_NAMES), SURNAMES, strict=False):
        yield f"{first} {last}"
    yield from FIRST_NAMES
    yield from SURNAMES


def _spellings() -> Iterator[str]:
    for name in (*SURNAMES[:20], *FIRST_NAMES[:10]):
        yield f"{name} spelled {' '.join(name)}"
    for letter, after in zip(LETTERS, (*LETTERS[7:], *LETTERS[:7]), strict=True):
        yield f"spelled {letter} {after} {letter}"


def corpus() -> list[str]:
    """Training sentences: every domain word in the frames callers put it in, deterministic."""
    dates, times = list(_dates()), list(_times())
    parties = [*_PARTY, "two people", "four people", "six guests", "a couple"]
    phones, names = list(_phones()), list(_names())
    out: list[str] = []
    openers = (
        "book a table", "i would like to book a table",
        "can i book a table", "i want to make a reservation", "a table",
        "i would like a table", "could i reserve a table", "reserve a table",
    )  # fmt: skip
    for index, (date, time) in enumerate(itertools.product(dates, times)):
        if index % 7:
            continue
        opener = openers[index % len(openers)]
        party = parties[index % len(parties)]
        people = " people" if index % 3 == 0 and party in _PARTY else ""
        if index % 2:
            out.append(f"{opener} for {party}{people} {date} at {time}")
        else:
            out.append(f"{opener} {date} at {time} for {party}{people}")
    for index, name in enumerate(names):
        phone = phones[index % len(phones)]
        out += [
            f"my name is {name}",
            f"my name is {name} phone {phone}",
            f"the name is {name} and my phone number is {phone}",
            f"this is {name} my number is {phone}",
            f"under {name}",
            f"it's {name}",
        ]
    out += [f"my phone number is {p}" for p in phones]
    out += [f"phone {p}" for p in phones] + [f"number {p}" for p in phones] + phones
    out += list(_spellings())
    for date, time in zip(dates, itertools.cycle(times), strict=False):
        out += [
            f"change my booking to {date} at {time}",
            f"move my reservation to {date} at {time}",
            f"do you have a table available {date} at {time}",
            f"is there a table free {date} at {time}",
            f"at {time}",
            date,
        ]
    for party in parties:
        out += [f"for {party}", f"party of {party}", f"there will be {party} of us"]
    out += [
        "look up my reservation", "look up my booking", "find my reservation",
        "check my booking", "do i have a reservation", "cancel my reservation",
        "cancel my booking", "i want to cancel", "i need to change my reservation",
        "yes", "yes please", "no", "no thank you", "that's right", "that's correct",
        "thank you", "thanks", "okay", "hello", "hi", "goodbye", "please",
        "is anything available", "what times are available", "a table for two please",
        "notes window seat", "note birthday", "we'd like a window seat",
    ]  # fmt: skip
    return out


def words() -> set[str]:
    """Every word the recogniser can output."""
    return {word for sentence in corpus() for word in sentence.split()}
