"""Deterministic extraction of booking slots from what a caller types.

The offline model cannot understand language, but demos and tests need it to behave like a
helpful agent for the handful of phrasings people actually use when booking a table. This module
is a pure function of ``(text, today)``: no clock, no I/O, so every rule is unit-testable.

Extraction is done in a fixed order, and each recognised span is cut out of the text before the
next extractor runs. That is what keeps ``"for 4 on 2026-12-01 at 7pm, 9123 4567"`` from being
read as one long phone number: dates, times and party sizes are gone before phones are looked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["Parsed", "parse"]

NUMBER_WORDS: dict[str, int] = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip

MONTHS: dict[str, int] = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Words that end a name ("my name is Alice and ...") and can never be one ("I'm Looking").
STOPWORDS = frozenset(
    """a an and at by for from i in is it me my no not of on or our party people phone please
    number table reservation booking guests the this to today tonight tomorrow with we yes you
    your here calling thanks thank just also would like want need book reserve""".split()
    + list(WEEKDAYS)
)

_CUT = " \x1f "  # what a consumed span becomes: a separator no pattern can match across

_NUM = r"(\d{1,2}|" + "|".join(NUMBER_WORDS) + r")"
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(\d{4}))?"

_NOTES = re.compile(r"\bnotes?\s*[:\-]\s*(.+)$", re.I | re.S)
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_MONTH_DAY = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}}){_ORD}\b{_YEAR}", re.I)
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH}\b\.?{_YEAR}", re.I)
_DAY_AFTER = re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b", re.I)
_TOMORROW = re.compile(r"\btomorrow\b", re.I)
_TODAY = re.compile(r"\b(?:today|tonight|this\s+evening)\b", re.I)
_WEEKDAY = re.compile(r"\b(?:(next|this|on)\s+)?(" + "|".join(WEEKDAYS) + r")\b", re.I)

_TIME_AMPM = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s*m\b\.?", re.I)
_TIME_NOON = re.compile(r"\b(noon|midday|midnight)\b", re.I)
_TIME_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_TIME_AT = re.compile(
    r"\b(?:at|around|about)\s+(\d{1,2})(?:\s*o'?clock)?\b"
    r"(?!\s*(?:people|persons|guests|pax|adults|of\s+us))",
    re.I,
)
_TIME_OCLOCK = re.compile(r"\b(\d{1,2})\s*o'?clock\b", re.I)

_PARTY_OF = re.compile(rf"\bparty\s+of\s+{_NUM}\b", re.I)
_PARTY_PEOPLE = re.compile(
    rf"\b{_NUM}\s+(?:people|persons|person|guests|pax|adults|diners|of\s+us)\b", re.I
)
_PARTY_FOR = re.compile(rf"\bfor\s+{_NUM}\b", re.I)
_PARTY_COUPLE = re.compile(r"\bfor\s+a\s+couple\b(?!\s+of)", re.I)

_PHONE = re.compile(r"(?<![\w+])\+?\d[\d\s().\-]{6,}\d(?!\w)")

_NAME_WORDS = r"([A-Za-z][A-Za-z'\-]*(?:[ \t]+[A-Za-z][A-Za-z'\-]*){0,3})"
_CAP_NAME_WORDS = r"(?-i:([A-Z][A-Za-z'\-]*(?:[ \t]+[A-Z][A-Za-z'\-]*){0,3}))"
# Cues that announce a name whatever its case ("my name is alice").
_NAME_STRONG = re.compile(
    r"\b(?:my\s+name\s+is|my\s+name['’]s|name\s+is|name['’]s|the\s+name\s+is|"
    r"under\s+the\s+name(?:\s+of)?|in\s+the\s+name\s+of|call\s+me)\s+" + _NAME_WORDS,
    re.I,
)
# Cues that often precede other words ("I'm looking"): the name must be capitalised.
_NAME_WEAK = re.compile(
    r"\b(?:i['’]m|i\s+am|im|this\s+is|it['’]s|it\s+is|under|name:?)\s+" + _CAP_NAME_WORDS,
    re.I,
)

_LOOKUP_STRONG = re.compile(
    r"\blook\s*up\b|\bfind\s+(?:my|our)\b|\bfind\s+(?:the|a)\s+(?:booking|reservation)\b|"
    r"\bcheck\s+(?:on\s+)?(?:my|our)\b|"
    r"\bdo\s+(?:i|we)\s+have\s+(?:a|any)\s+(?:booking|reservation)s?\b|"
    r"\b(?:confirm|retrieve)\s+(?:my|our)\b",
    re.I,
)
_BOOK_VERB = re.compile(
    r"\bbook(?:\s+it|\s+a|\s+me|\s+us)?\b|\breserve\b|\bmake\s+a\s+(?:reservation|booking)\b",
    re.I,
)
_LOOKUP_WEAK = re.compile(r"\b(?:my|our|existing)\s+(?:booking|reservation)s?\b", re.I)
_AVAILABILITY = re.compile(
    r"\bavailab|\bfree\b|\bany\s+(?:tables?|space|room|seats?)\b|"
    r"\bdo\s+you\s+have\s+(?:a\s+|any\s+)?(?:tables?|space|room|seats?)\b",
    re.I,
)
# Phone calls: asking for a person, and saying goodbye (the end_call and transfer_call tools).
_TRANSFER = re.compile(
    r"\btransfer\s+me\b|\b(?:speak|talk)\s+(?:to|with)\s+(?:a\s+|the\s+|some)?"
    r"(?:person|human|one|staff|manager|someone)\b",
    re.I,
)
_GOODBYE = re.compile(r"\bgood\s*-?\s*bye\b|\bbye\b|\bthat['’]s\s+all\b|\bhang\s+up\b", re.I)
_HOURS = re.compile(
    r"\bare\s+you\s+open\b|\bopening\s+(?:hours|times)\b|\bwhen\s+(?:are|do)\s+you\s+open\b"
    r"|\byour\s+hours\b|\bwhat\s+(?:are\s+)?(?:the\s+)?hours\b",
    re.I,
)
_BOOK_WEAK = re.compile(r"\btables?\b|\breservation\b|\bbooking\b|\bparty\s+of\b", re.I)
_CANCEL = re.compile(r"\bcancel(?:l?ing)?\b|\bcall\s+off\b", re.I)
_CHANGE = re.compile(
    r"\b(?:move|change|reschedule|push|shift|update)\s+(?:my|our|the|it)\b|\breschedule\b", re.I
)
# "make it 6 people" changes a booking, unless the same turn is booking one.
_CHANGE_WEAK = re.compile(
    r"\bmake\s+it\b(?=[^.?!]*\d|[^.?!]*\b(?:" + "|".join(NUMBER_WORDS) + r")\b)", re.I
)
# A yes or a no to the host's question, said first in the turn ("yes please", "no, leave it").
_YES = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|sure|correct|right|ok(?:ay)?|please\s+do|go\s+ahead|"
    r"that'?s\s+right|confirm(?:ed)?)\b",
    re.I,
)
_NO = re.compile(r"^\W*(?:no|nope|don'?t|do\s+not|never\s*mind|leave\s+it)\b", re.I)


@dataclass(frozen=True)
class Parsed:
    """Slots found in one utterance; ``None`` means "not mentioned", never "empty"."""

    intent: str | None = None  # book, lookup, availability, change, cancel, transfer, end
    name: str | None = None
    phone: str | None = None
    date: str | None = None  # ISO "YYYY-MM-DD"
    time: str | None = None  # 24 h "HH:MM"
    party_size: int | None = None
    notes: str | None = None
    answer: str | None = None  # "yes" | "no": the reply to a question the host asked


class _Text:
    """The utterance being consumed: each successful ``take`` cuts its match out."""

    def __init__(self, text: str) -> None:
        self.text = text

    def take(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        match = pattern.search(self.text)
        if match:
            self.text = self.text[: match.start()] + _CUT + self.text[match.end() :]
        return match


def parse(text: str, today: date) -> Parsed:
    """Extract intent and slots from ``text``; relative dates resolve against ``today``."""
    work = _Text(text)
    notes = _notes(work)
    day = _date(work, today)
    clock = _time(work)
    party = _party(work)
    phone = _phone(work)
    name = _name(work)
    return Parsed(
        intent=_intent(text),
        name=name,
        phone=phone,
        date=day.isoformat() if day else None,
        time=clock,
        party_size=party,
        notes=notes,
        answer="yes" if _YES.search(text) else "no" if _NO.search(text) else None,
    )


def _notes(work: _Text) -> str | None:
    match = work.take(_NOTES)
    if not match:
        return None
    return match.group(1).strip().rstrip(".") or None


# --- dates ---------------------------------------------------------------------------------


def _date(work: _Text, today: date) -> date | None:
    if match := work.take(_ISO_DATE):
        return _safe_date(int(match[1]), int(match[2]), int(match[3]))
    if match := work.take(_MONTH_DAY):
        return _month_day(MONTHS[match[1][:3].lower()], int(match[2]), match[3], today)
    if match := work.take(_DAY_MONTH):
        return _month_day(MONTHS[match[2][:3].lower()], int(match[1]), match[3], today)
    if work.take(_DAY_AFTER):
        return today + timedelta(days=2)
    if work.take(_TOMORROW):
        return today + timedelta(days=1)
    if work.take(_TODAY):
        return today
    if match := work.take(_WEEKDAY):
        return _weekday(WEEKDAYS.index(match[2].lower()), (match[1] or "").lower(), today)
    return None


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_day(month: int, day: int, year: str | None, today: date) -> date | None:
    """A month/day without a year is the next one to come: in December, "March 3" is next year."""
    if year:
        return _safe_date(int(year), month, day)
    found = _safe_date(today.year, month, day)
    if found is not None and found < today:
        found = _safe_date(today.year + 1, month, day)
    return found


def _weekday(weekday: int, qualifier: str, today: date) -> date:
    """``"friday"`` is the coming Friday, today included; ``"next friday"`` is never today."""
    ahead = (weekday - today.weekday()) % 7
    if qualifier == "next" and ahead == 0:
        ahead = 7
    return today + timedelta(days=ahead)


# --- times ---------------------------------------------------------------------------------


def _time(work: _Text) -> str | None:
    if match := work.take(_TIME_AMPM):
        hour, minute = int(match[1]), int(match[2] or 0)
        if not 1 <= hour <= 12 or minute > 59:
            return None
        hour = hour % 12 + (12 if match[3].lower() == "p" else 0)
        return f"{hour:02d}:{minute:02d}"
    if match := work.take(_TIME_NOON):
        return "00:00" if match[1].lower() == "midnight" else "12:00"
    if match := work.take(_TIME_CLOCK):
        hour, minute = int(match[1]), int(match[2])
        if hour > 23 or minute > 59:
            return None
        if not match[1].startswith("0"):  # "07:30" is explicit 24 h; "7:30" is ambiguous
            hour = _evening(hour)
        return f"{hour:02d}:{minute:02d}"
    match = work.take(_TIME_AT) or work.take(_TIME_OCLOCK)
    if match:
        hour = int(match[1])
        return f"{_evening(hour):02d}:00" if hour <= 23 else None
    return None


def _evening(hour: int) -> int:
    """A restaurant hears "at 7" as 19:00: hours 1-10 without am/pm are evening hours."""
    return hour + 12 if 1 <= hour <= 10 else hour


# --- party size, phone, name ---------------------------------------------------------------


def _party(work: _Text) -> int | None:
    for pattern in (_PARTY_OF, _PARTY_PEOPLE, _PARTY_FOR):
        if match := work.take(pattern):
            size = _number(match[1])
            if size is not None and 1 <= size <= 50:
                return size
    if work.take(_PARTY_COUPLE):
        return 2
    return None


def _number(word: str) -> int | None:
    return int(word) if word.isdigit() else NUMBER_WORDS.get(word.lower())


def _phone(work: _Text) -> str | None:
    """Digit groups with spaces/dashes/dots/brackets, at least 8 digits; keeps a leading ``+``."""
    for match in _PHONE.finditer(work.text):
        digits = re.sub(r"\D", "", match[0])
        if 8 <= len(digits) <= 15:
            work.text = work.text[: match.start()] + _CUT + work.text[match.end() :]
            return ("+" if match[0].startswith("+") else "") + digits
    return None


def _name(work: _Text) -> str | None:
    for pattern in (_NAME_STRONG, _NAME_WEAK):
        match = work.take(pattern)
        if match and (name := _clean_name(match[1])):
            return name
    return None


def _clean_name(raw: str) -> str | None:
    """Keep words up to the first stopword; capitalise words typed in lower case."""
    words: list[str] = []
    for word in raw.split():
        if word.lower() in STOPWORDS:
            break
        words.append(word.capitalize() if word.islower() else word)
    return " ".join(words) or None


# --- intent --------------------------------------------------------------------------------


def _intent(text: str) -> str | None:
    """A person asked for first; cancelling and changing beat strong lookup cues, which beat
    booking verbs, which beat "make it …", a goodbye, availability and weak cues."""
    if _TRANSFER.search(text):
        return "transfer"
    if _CANCEL.search(text):
        return "cancel"
    if _CHANGE.search(text):
        return "change"
    if _LOOKUP_STRONG.search(text):
        return "lookup"
    if _BOOK_VERB.search(text):
        return "book"
    if _CHANGE_WEAK.search(text):
        return "change"
    if _GOODBYE.search(text):
        return "end"
    if _HOURS.search(text):
        return "hours"
    if _LOOKUP_WEAK.search(text):
        return "lookup"
    if _AVAILABILITY.search(text):
        return "availability"
    if _BOOK_WEAK.search(text):
        return "book"
    return None
