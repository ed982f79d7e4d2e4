"""How a host reads back what it heard on a spoken call, and what each question listens for.

Heard digits and names are the recogniser's best guess, so before booking the host says them
back the way people check them: a number digit by digit in small groups ("9 8 2 0, 7 2 7 2"),
a name letter by letter ("L O V E L A C E"). Pure text; ``dialog`` decides when to say it.
"""

from __future__ import annotations

__all__ = ["LISTEN_FOR", "WHAT_IS_RIGHT", "booking", "group_digits", "spell_name"]

# The question for a slot → what the recogniser listens for next (``grammars.Listen`` values).
LISTEN_FOR = {"name": "name", "phone": "phone"}
WHAT_IS_RIGHT = "Sorry about that. What is the right name or number? You can spell the name."


def group_digits(phone: str) -> str:
    """ "98207272" → "9 8 2 0, 7 2 7 2"; "+6598207272" → "plus 6 5, 9 8 2 0, 7 2 7 2": groups
    of four from the end (three where four would leave one alone), a country code apart."""
    plus, digits = ("plus ", phone[1:]) if phone.startswith("+") else ("", phone)
    digits = "".join(ch for ch in digits if ch.isdigit())
    local = digits[-8:] if plus and len(digits) > 8 else digits
    groups: list[str] = []
    rest = local
    while rest:
        size = 3 if len(rest) in (5, 6, 9) else 4
        groups.insert(0, rest[-size:])
        rest = rest[:-size]
    if plus and len(digits) > 8:
        groups.insert(0, digits[:-8])
    return plus + ", ".join(" ".join(group) for group in groups)


def spell_name(name: str) -> str:
    """ "Ada Lovelace" → "A D A, L O V E L A C E"."""
    return ", ".join(" ".join(word.upper()) for word in name.split() if word)


def booking(party_size: int | None, when: str, name: str | None, phone: str | None) -> str:
    """ "To confirm: a table for 2 on …, under Ada Lovelace, A D A, L O V E L A C E, phone
    9 8 2 0, 7 2 7 2. Shall I book it?" (``when`` as the dialog says dates and times)."""
    return (
        f"To confirm: a table for {party_size} on {when}, under {name}, "
        f"{spell_name(name or '')}, phone {group_digits(phone or '')}. Shall I book it?"
    )
