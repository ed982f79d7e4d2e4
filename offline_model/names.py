"""Common first names and surnames, for hearing and reading back a caller's name.

The lists in ``data/`` are the most frequent names of the 1990 US Census (public domain) that
the recogniser's pronouncing dictionary can say: 1,500 first names and 2,500 surnames
(``data/make_names.py`` regenerates them and names the source). A name outside them can still
be spelled, letter by letter or in the NATO alphabet.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["FIRST_NAMES", "SURNAMES"]


def _load(file: str) -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("data", file).read_text(encoding="ascii")
    return tuple(line for line in text.split() if line)


FIRST_NAMES = _load("first_names.txt")
SURNAMES = _load("surnames.txt")
