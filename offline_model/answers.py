"""Words heard as the answer to the host's question fill that question's slot.

Asked "what name should I put the booking under?", a caller says "Ada Lovelace", with no "my
name is" for the parser to find; asked to spell, "L O V E L A C E", which ``transcript`` has
already joined into "Lovelace". ``answer_of`` adds what the question implies to what the
parser found; when the recogniser fell back to the general model (``heard_as`` "general") the
words are taken as said, since the caller answered something else.
"""

from __future__ import annotations

import dataclasses

from .dialog import Slots
from .intents import STOPWORDS, Parsed

__all__ = ["answer_of"]

_LEADS = frozenset(
    """it's that's spelled under yes no is it name my right correct please thank thanks you
    sorry""".split()
)


def _name_words(text: str) -> list[str]:
    """The words of ``text`` that could be a name, or none when anything else is in it."""
    words = [w for w in text.replace(",", " ").split() if w.lower() not in _LEADS]
    if not 1 <= len(words) <= 3 or any(not w.isalpha() for w in words):
        return []
    if any(w.lower() in STOPWORDS for w in words):
        return []
    return [w.capitalize() for w in words]


def answer_of(parsed: Parsed, text: str, heard_as: str, slots: Slots) -> Parsed:
    """``parsed`` with the name the question implies, when the parser found none."""
    if parsed.name is not None or parsed.phone is not None or heard_as == "general":
        return parsed
    if parsed.answer == "yes":  # "yes, that's right" confirms; it names nobody
        return parsed
    words = _name_words(text)
    if not words:
        return parsed
    if heard_as == "name" and len(words) > 1:
        return dataclasses.replace(parsed, name=" ".join(words))
    if len(words) == 1 and slots.name:  # a spelling corrects the surname, or a one-word name
        kept = slots.name.split()[:-1] if heard_as != "name" else []
        return dataclasses.replace(parsed, name=" ".join([*kept, words[0]]))
    return dataclasses.replace(parsed, name=" ".join(words))
