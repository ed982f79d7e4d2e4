"""Rules that need no database: phone normalisation and field validation."""

import datetime as dt

import pytest

from server.book.models import (
    InvalidPhoneNumber,
    RequestInvalid,
    mask_phone,
    normalize_phone,
    validate_request,
)

TODAY = dt.date(2026, 11, 25)


def body(**overrides):
    base = {
        "name": "Ada Lovelace",
        "phone_number": "9820 7272",
        "reservation_date": "2026-12-01",
        "reservation_time": "19:30",
        "party_size": 4,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    "raw", ["9820 7272", "+65 9820-7272", "6598207272", "+6598207272", "  98207272 "]
)
def test_singapore_numbers_normalise_to_e164(raw):
    assert normalize_phone(raw, "SG") == "+6598207272"


def test_default_region_is_used_for_national_numbers():
    assert normalize_phone("(415) 555-2671", "US") == "+14155552671"
    assert normalize_phone("+44 20 7946 0958", "SG") == "+442079460958"


def test_country_code_without_plus_is_only_guessed_for_the_default_region():
    # 41 55 555 2671 would be a Swiss number; in region SG it must not be guessed as one.
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone("4155552671", "SG")


@pytest.mark.parametrize("raw", ["", "123", "hello", "+65 1234", "9" * 41, "+999 12345678"])
def test_invalid_numbers_are_rejected(raw):
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw, "SG")


def test_mask_phone_keeps_last_four():
    assert mask_phone("+6598207272") == "*******7272"


def test_valid_request_is_normalised_and_trimmed():
    request = validate_request(body(name="  Ada  "), region="SG", today=TODAY)
    assert request.name == "Ada"
    assert request.phone_number == "+6598207272"
    assert request.reservation_date == dt.date(2026, 12, 1)
    assert request.reservation_time == dt.time(19, 30)
    assert request.other_info == {}


def test_today_is_allowed_but_yesterday_is_not():
    assert validate_request(body(reservation_date="2026-11-25"), region="SG", today=TODAY)
    with pytest.raises(RequestInvalid) as exc:
        validate_request(body(reservation_date="2026-11-24"), region="SG", today=TODAY)
    assert "past" in exc.value.fields["reservation_date"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "   "),
        ("name", "x" * 101),
        ("name", 5),
        ("phone_number", "12"),
        ("phone_number", None),
        ("reservation_date", "01/12/2026"),
        ("reservation_date", "2026-02-30"),
        ("reservation_date", 20261201),
        ("reservation_time", "7pm"),
        ("reservation_time", "24:00"),
        ("reservation_time", "7:30"),
        ("reservation_time", "19:30:00"),
        ("party_size", 0),
        ("party_size", 21),
        ("party_size", "4"),
        ("party_size", 2.5),
        ("party_size", True),
        ("other_info", "window seat"),
        ("other_info", [1, 2]),
        ("other_info", {"notes": "x" * 5000}),
    ],
)
def test_each_bad_field_is_named(field, value):
    with pytest.raises(RequestInvalid) as exc:
        validate_request(body(**{field: value}), region="SG", today=TODAY)
    assert list(exc.value.fields) == [field]
    assert exc.value.fields[field]


def test_missing_and_unknown_fields_are_reported_together():
    data = body(colour="blue")
    del data["party_size"]
    with pytest.raises(RequestInvalid) as exc:
        validate_request(data, region="SG", today=TODAY)
    assert exc.value.fields == {"party_size": "is required", "colour": "is not a known field"}


@pytest.mark.parametrize("data", [[], "x", None, 3])
def test_body_must_be_an_object(data):
    with pytest.raises(RequestInvalid) as exc:
        validate_request(data, region="SG", today=TODAY)
    assert exc.value.fields == {"body": "must be a JSON object"}
