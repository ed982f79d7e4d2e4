"""The reservation's shape and the rules that need no database.

REST bodies and the model's tool arguments both end up as a `ReservationRequest`, so a booking
made by voice and one made over HTTP are checked by the same code.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

MAX_OTHER_INFO_BYTES = 4096
NAME_MAX = 100


class InvalidPhoneNumber(ValueError):
    """The text is not a valid phone number for the given default region."""


def normalize_phone(raw: str, region: str) -> str:
    """Return the E.164 form ("+6598207272") of a number typed or spoken in many ways.

    A number without a country code is read in `region`; one that starts with that region's
    country code but no "+" ("6598207272") is accepted too, since callers often say it that way.
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > 40:
        raise InvalidPhoneNumber("phone number is empty or too long")
    country_code = str(phonenumbers.country_code_for_region(region))
    candidates = [text]
    if text.startswith(country_code):
        candidates.append("+" + text)
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidPhoneNumber(f"{text!r} is not a valid phone number")


def mask_phone(e164: str) -> str:
    """Phone numbers in logs show only their last four digits."""
    return "*" * max(len(e164) - 4, 0) + e164[-4:]


def parse_hh_mm(value: Any) -> dt.time:
    """Only `HH:MM` on a 24-hour clock: "7:30" could be morning or evening."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str) and len(value) == 5:
        try:
            return dt.datetime.strptime(value, "%H:%M").time()
        except ValueError:
            pass
    raise ValueError("must be a 24-hour time as HH:MM, e.g. 19:30")


def _storable_name(value: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold NUL: refuse it here, not with a 500
        raise ValueError("must not contain NUL characters")
    return value


def _small_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # parsed JSON may nest deeper than orjson writes (254)
        raise ValueError("is nested too deeply") from None
    if len(encoded) > MAX_OTHER_INFO_BYTES:
        raise ValueError(f"must be at most {MAX_OTHER_INFO_BYTES} bytes of JSON")
    if _has_nul(value):  # jsonb refuses \u0000 in keys and strings
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


# Each field's rules, once: a booking and a change to it are checked by the same types.
IsoDate = Annotated[dt.date, BeforeValidator(lambda value: parse_iso_date(value))]
HhMm = Annotated[dt.time, BeforeValidator(parse_hh_mm)]
PartySize = Annotated[int, Field(ge=1, le=20, strict=True)]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_storable_name)]
# Keys as sent: the model's str_strip_whitespace would turn " note" into "note", and
# {" a ": 1, "a": 2} into {"a": 2}.
OtherInfo = Annotated[
    dict[Annotated[str, StringConstraints(strip_whitespace=False)], Any],
    AfterValidator(_small_object),
]


class Slot(BaseModel):
    """When and for how many: all that `check_availability` needs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reservation_date: IsoDate
    reservation_time: HhMm
    party_size: PartySize


class ReservationRequest(Slot):
    """A booking as asked for; `validate_request` adds the rules that need context."""

    name: Name
    phone_number: str = Field(min_length=1, max_length=40)
    other_info: OtherInfo = Field(default_factory=dict)


class ReservationChange(BaseModel):
    """A change to a booking: any of its fields but the phone number, under the same rules."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name | None = None
    reservation_date: IsoDate | None = None
    reservation_time: HhMm | None = None
    party_size: PartySize | None = None
    other_info: OtherInfo | None = None


CHANGE_FIELDS = tuple(ReservationChange.model_fields)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def parse_iso_date(value: Any) -> dt.date:
    """Only the strict `YYYY-MM-DD` form: "12/01" means different days in different places."""
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date as YYYY-MM-DD")


class RequestInvalid(Exception):
    """Field-level problems, as {field: message}; becomes a 422 or a tool error."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def _validate(model: type[BaseModel], data: Any, today: dt.date) -> tuple[Any, dict[str, str]]:
    """The model (or None) and every field problem, the past-date rule included."""
    if not isinstance(data, dict):
        raise RequestInvalid({"body": "must be a JSON object"})
    fields: dict[str, str] = {}
    parsed: Any
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            loc = str(error["loc"][0]) if error["loc"] else "body"
            fields.setdefault(loc, _message(error))
        parsed = None
    if "reservation_date" not in fields:
        when = parsed.reservation_date if parsed else _date_or_none(data.get("reservation_date"))
        if when is not None and when < today:
            fields["reservation_date"] = f"must not be in the past (today is {today.isoformat()})"
    return parsed, fields


def validate_slot(data: Any, *, today: dt.date) -> Slot:
    """Check a date, time and party size. Raises `RequestInvalid`."""
    slot, fields = _validate(Slot, data, today)
    if fields:
        raise RequestInvalid(fields)
    return slot


def validate_request(data: Any, *, region: str, today: dt.date) -> ReservationRequest:
    """Parse and check a booking; the phone comes back in E.164. Raises `RequestInvalid`."""
    request, fields = _validate(ReservationRequest, data, today)
    phone = None
    phone_raw = data.get("phone_number")
    if "phone_number" not in fields and isinstance(phone_raw, str):
        try:
            phone = normalize_phone(phone_raw, region)
        except InvalidPhoneNumber as exc:
            fields["phone_number"] = str(exc)
    if fields or request is None:
        raise RequestInvalid(fields)
    return request.model_copy(update={"phone_number": phone})


def validate_change(data: Any, *, today: dt.date) -> dict[str, Any]:
    """Parse a change: the fields given, checked as at booking. Raises `RequestInvalid`."""
    if not isinstance(data, dict):
        raise RequestInvalid({"body": "must be a JSON object"})
    fields: dict[str, str] = {}
    if "phone_number" in data:
        fields["phone_number"] = "cannot be changed: cancel the booking and make a new one"
    nulls = {key: "must not be null" for key in CHANGE_FIELDS if key in data and data[key] is None}
    rest = {k: v for k, v in data.items() if k != "phone_number" and k not in nulls}
    if not data:
        fields["body"] = "must contain at least one of " + ", ".join(CHANGE_FIELDS)
    change, problems = _validate(ReservationChange, rest, today)
    fields.update(nulls)
    fields.update(problems)
    if fields or change is None:
        raise RequestInvalid(fields)
    return {key: getattr(change, key) for key in change.model_fields_set}


def _date_or_none(value: Any) -> dt.date | None:
    try:
        return parse_iso_date(value)
    except ValueError:
        return None


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    message: str = error["msg"]
    return message.removeprefix("Value error, ")
