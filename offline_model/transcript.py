"""Recognised words → the text a caller would have typed, so spoken turns use the typed-turn parser.

The recogniser outputs lower-case words ("table for four tomorrow at seven thirty p m my name is
ada lovelace phone nine eight two zero seven two seven two"); the intent parser, and the page's
transcript, want "table for 4 tomorrow at 7:30 pm my name is Ada Lovelace phone 98207272". Pure
functions over word lists; the rules, in order:

- letters and repeats: the answer models' spoken letters ("l." for "el") and the NATO alphabet
  ("lima echo echo") become letters inside a run of three or more letter words; "double five"
  and "double e" say the next one twice, "triple" three times; "plus" before digits is "+";
- spelling: three or more single letters spell a word: it replaces the word before them, or,
  when it was already said just before ("Hopper, spelled H O P P E R"), confirms it and drops
  whatever was heard in between (the recogniser often hears "spelled" as a name);
- digit runs: three or more single digits in a row ("oh" counts as zero) are a phone number;
  inside a run, words the recogniser confuses with digits ("to", "for", "a") count as digits;
- times: an hour followed by minutes and/or ``p m``/``a m``/``o'clock``, "half past seven";
- numbers: "twenty four" → 24, and ordinals "twenty fourth" → 24th (dates; "december the
  24th" loses its "the");
- names from the vocabulary's lists are capitalised.
"""

from __future__ import annotations

from .grammars import NATO
from .intents import NUMBER_WORDS
from .vocabulary import DIGITS, FIRST_NAMES, LETTERS, MONTH_NAMES, ORDINALS, SURNAMES, TENS

__all__ = ["normalise"]

_DIGIT = {word: str(n) for n, word in enumerate(DIGITS)} | {"oh": "0"}
# Heard instead of a digit, inside a run of digits: "nine a to zero" is "nine eight two zero".
_SOUNDS_LIKE = {"to": "2", "too": "2", "do": "2", "for": "4", "a": "8", "won": "1"}
_UNITS = {word: n for word, n in NUMBER_WORDS.items() if n < 10}
_MINUTES = {"fifteen": 15, "thirty": 30, "forty": 40, "fifty": 50, "forty five": 45}
_NAMES = frozenset(FIRST_NAMES) | frozenset(SURNAMES)
_LETTERS = frozenset(LETTERS)
_SPELL_CUES = frozenset({"spelled", "spelt", "spelling"})
_ORDINAL_START = frozenset(ORDINALS) | frozenset(TENS)


def normalise(words: str) -> str:
    """Readable, parser-ready text for one recognised utterance (empty stays empty)."""
    tokens = _repeats(_letters(words.split()))
    tokens = _spelling(tokens)
    tokens = _digit_runs(tokens)
    tokens = _times(tokens)
    tokens = _numbers(tokens)
    return " ".join(t.capitalize() if t in _NAMES else t for t in tokens)


_SPOKEN_LETTER = {f"{letter}.": letter for letter in LETTERS}
_REPEAT = {"double": 2, "triple": 3}


def _letter(token: str) -> str | None:
    return _SPOKEN_LETTER.get(token) or NATO.get(token) or (token if token in _LETTERS else None)


def _letters(tokens: list[str]) -> list[str]:
    """Runs of three or more letter words ("double" inside them too) become plain letters; a
    lone "mike" or "victor" stays a name."""
    out: list[str] = []
    index = 0
    while index < len(tokens):
        end = index
        while end < len(tokens) and (_letter(tokens[end]) or tokens[end] in _REPEAT):
            end += 1
        run = tokens[index:end]
        if sum(_letter(t) is not None for t in run) >= 3:
            out += [_letter(t) or t for t in run]
            index = end
        else:
            out.append(_SPOKEN_LETTER.get(tokens[index], tokens[index]))
            index += 1
    return out


def _repeats(tokens: list[str]) -> list[str]:
    """ "double five" → "five five"; "double" before anything but a digit or letter stays."""
    out: list[str] = []
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if token in _REPEAT and (following in _DIGIT or following in _LETTERS):
            out += [following] * (_REPEAT[token] - 1)
        else:
            out.append(token)
    return out


def _spelling(tokens: list[str]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(tokens):
        end = index
        while end < len(tokens) and tokens[end] in _LETTERS:
            end += 1
        if end - index < 3:
            out.append(tokens[index])
            index += 1
            continue
        spelled = "".join(tokens[index:end])
        recent = [i for i in range(max(0, len(out) - 3), len(out)) if out[i].lower() == spelled]
        if recent:
            del out[recent[-1] + 1 :]  # "hopper <misheard 'spelled'>" → "hopper"
        else:
            if out and out[-1] in _SPELL_CUES:
                out.pop()
            if out and out[-1] not in {"is", "name", "it's", "under"}:
                out.pop()  # the recogniser's guess at the word being spelled
            out.append(spelled.capitalize())
        index = end
    return out


def _digit_runs(tokens: list[str]) -> list[str]:
    """Runs of digits (and digit sound-alikes between digits) with at least three real digits."""
    out: list[str] = []
    index = 0
    while index < len(tokens):
        if tokens[index] not in _DIGIT:
            out.append(tokens[index])
            index += 1
            continue
        end, last_digit = index, index
        while end < len(tokens) and (tokens[end] in _DIGIT or tokens[end] in _SOUNDS_LIKE):
            if tokens[end] in _DIGIT:
                last_digit = end
            end += 1
        digits = sum(t in _DIGIT for t in tokens[index:end])
        # A short run never ends on a sound-alike ("two for seven"); a phone number's can.
        run = tokens[index:end] if digits >= 6 else tokens[index : last_digit + 1]
        if sum(t in _DIGIT for t in run) >= 3:
            plus = "+" if out and out[-1] == "plus" else ""
            if plus:
                out.pop()
            out.append(plus + "".join(_DIGIT.get(t) or _SOUNDS_LIKE[t] for t in run))
        else:
            out += run
        index += len(run)
    return out


def _hour(token: str) -> int | None:
    value = NUMBER_WORDS.get(token)
    return value if value is not None and 1 <= value <= 12 else None


def _times(tokens: list[str]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        rest = tokens[index + 1 :]
        if token == "half" and rest[:1] == ["past"] and len(rest) > 1 and _hour(rest[1]):
            out.append(f"{_hour(rest[1])}:30")
            index += 3
            continue
        hour = _hour(token)
        if hour is None:
            out.append(token)
            index += 1
            continue
        minutes, used = _minutes_after(rest)
        suffix = ""
        after = rest[used:]
        if after[:2] in (["p", "m"], ["a", "m"]):
            suffix, used = f" {after[0]}m", used + 2
        elif after[:1] in (["pm"], ["am"], ["p.m."], ["a.m."]):
            suffix, used = f" {after[0].replace('.', '')}", used + 1
        elif after[:1] == ["o'clock"] and minutes is None:
            suffix, used = " o'clock", used + 1
        if minutes is None and not suffix:
            out.append(token)  # a bare number: a party size, or "at seven" (the parser decides)
            index += 1
            continue
        clock = f"{hour}:{minutes:02d}" if minutes is not None else str(hour)
        out.append(clock + suffix)
        index += 1 + used
    return out


def _minutes_after(rest: list[str]) -> tuple[int | None, int]:
    if rest[:2] == ["forty", "five"]:
        return 45, 2
    if rest[:1] and rest[0] in _MINUTES:
        return _MINUTES[rest[0]], 1
    return None, 0


def _numbers(tokens: list[str]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if token in TENS and following in _UNITS:
            out.append(str(TENS[token] + _UNITS[following]))
            index += 2
            continue
        if token == "the" and out and out[-1] in MONTH_NAMES and following in _ORDINAL_START:
            index += 1  # "december the twenty fourth" → "december 24th"
            continue
        if token in TENS and following in ORDINALS and ORDINALS[following] < 10:
            out.append(_ordinal(TENS[token] + ORDINALS[following]))
            index += 2
            continue
        if token in ORDINALS:
            out.append(_ordinal(ORDINALS[token]))
        elif token in NUMBER_WORDS:
            out.append(str(NUMBER_WORDS[token]))
        elif token in TENS:
            out.append(str(TENS[token]))
        else:
            out.append(token)
        index += 1
    return out


def _ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"
