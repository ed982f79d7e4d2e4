"""The pure parts of guest messages: REMINDERS_BEFORE, manage-link tokens, which text an event
sends, and the texts themselves."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from server.access import manage_links
from server.book import outbox
from server.book.outbox import Message
from server.messaging import texts
from server.settings import Settings
from server.startup_warnings import startup_warnings

KEY = b"k" * 32


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_reminders_before_reads_minutes_hours_and_days() -> None:
    hours = dt.timedelta(hours=1)
    assert make(reminders_before="24h,2h").reminder_offsets == (24 * hours, 2 * hours)
    assert make(reminders_before=" 90m , 1d,90m").reminder_offsets == (
        24 * hours,
        dt.timedelta(minutes=90),
    )
    assert make(reminders_before="").reminder_offsets == ()
    for bad in ("2", "2x", "0h", "-1h", "1.5h", "h"):
        with pytest.raises(ValidationError, match="REMINDERS_BEFORE"):
            make(reminders_before=bad)


def test_sms_from_and_the_lease_are_checked() -> None:
    assert make(sms_from="+6560001111").sms_from == "+6560001111"
    assert make(sms_from="MG" + "a" * 32).sms_from.startswith("MG")  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="SMS_FROM"):
        make(sms_from="60001111")
    with pytest.raises(ValidationError, match="MESSAGE_LEASE_S"):
        make(message_lease_s=5, twilio_timeout_s=10)
    assert not make(twilio_account_sid="AC1", sms_from="+6560001111").sms_configured


def test_manage_tokens_name_one_booking_and_cannot_be_forged() -> None:
    token = manage_links.mint(KEY, 42, "ABC234")
    assert manage_links.reservation_id(token) == 42
    assert manage_links.matches(KEY, token, 42, "ABC234")
    assert not manage_links.matches(KEY, token, 42, "XYZ789")  # the row now holds another booking
    assert not manage_links.matches(b"x" * 32, token, 42, "ABC234")
    assert not manage_links.matches(KEY, manage_links.mint(KEY, 43, "ABC234"), 42, "ABC234")
    for bad in ("", "42", "42.", "042." + token[3:], "x.y", token + "A", "-1." + token[3:]):
        assert manage_links.reservation_id(bad) is None


@pytest.mark.parametrize(
    ("action", "status", "kind"),
    [
        ("created", "confirmed", "confirmation"),
        ("replaced", "confirmed", "confirmation"),
        ("created", "requested", "request"),
        ("confirmed", "confirmed", "confirmation"),
        ("changed", "confirmed", "change"),
        ("changed", "requested", "change"),
        ("cancelled", "cancelled", "cancellation"),
        ("declined", "cancelled", "cancellation"),
    ],
)
def test_each_history_action_sends_its_kind_of_text(action: str, status: str, kind: str) -> None:
    assert outbox.kind_of(action, status) == kind


def message(
    kind: str, event: str, remind_before: dt.timedelta | None = None, source: str = "staff"
) -> Message:
    now = dt.datetime.now(dt.UTC)
    booking = {
        "reservation_date": "2026-12-09",
        "reservation_time": "19:30",
        "party_size": 12,
        "confirmation_number": "ABC234",
        "status": "confirmed",
    }
    return Message(
        id=1,
        reservation_id=7,
        phone_number="+6591110000",
        kind=kind,
        event=event,
        source=source,
        booking=booking,
        previous={**booking, "party_size": 10},
        remind_before=remind_before,
        due_at=now,
        status="sending",
        attempts=1,
        body=None,
        twilio_sid=None,
        error=None,
        created_at=now,
        sent_at=None,
        updated_at=now,
    )


@pytest.mark.parametrize(
    ("kind", "event", "says"),
    [
        ("request", "created", "we received your request for 12 guests on Wed 9 Dec at 19:30"),
        ("confirmation", "confirmed", "your request is confirmed: 12 guests"),
        ("confirmation", "created", "you're booked for 12 guests on Wed 9 Dec at 19:30"),
        ("change", "changed", "now for 12 guests on Wed 9 Dec at 19:30 (was 10 guests on"),
        ("cancellation", "declined", "sorry, we cannot take your request"),
        ("cancellation", "cancelled", "(ABC234) is cancelled"),
    ],
)
def test_texts_say_what_happened(kind: str, event: str, says: str) -> None:
    body = texts.render(message(kind, event), "Luma Bistro", "https://x.example/r/7.t")
    assert body.startswith("Luma Bistro: ") and says in body and "+6591110000" not in body
    assert len(body) <= texts.MAX_BODY
    if event != "cancelled" and event != "declined":
        assert "https://x.example/r/7.t" in body


@pytest.mark.parametrize(
    ("before", "lead"),
    [
        (dt.timedelta(days=1), "see you tomorrow!"),
        (dt.timedelta(hours=2), "see you in 2 hours!"),
        (dt.timedelta(minutes=90), "see you in 90 minutes!"),
    ],
)
def test_reminders_say_how_soon(before: dt.timedelta, lead: str) -> None:
    body = texts.render(message("reminder", "reminder", before), "Luma Bistro", "L")
    assert lead in body and "Confirmation ABC234" in body


def test_a_guest_withdrawing_a_request_is_not_told_it_was_declined() -> None:
    body = texts.render(message("cancellation", "declined", source="guest"), "Luma Bistro", "L")
    assert "is withdrawn, as you asked" in body and "sorry" not in body


def test_start_up_warns_of_texts_half_set_up() -> None:
    def sms_lines(**values: object) -> list[str]:
        return [w for w in startup_warnings(make(**values)) if "text" in w]

    assert sms_lines() == []  # texts not wanted: nothing to say
    (half,) = sms_lines(twilio_account_sid="AC1", twilio_auth_token="t")
    assert half.startswith("SMS_FROM not set") and "skipped_not_configured" in half
    (links,) = sms_lines(twilio_account_sid="AC1", twilio_auth_token="t", sms_from="+6560001111")
    assert links.startswith("PUBLIC_BASE_URL is not set")
    ready = {"twilio_account_sid": "AC1", "twilio_auth_token": "t", "sms_from": "+6560001111"}
    assert sms_lines(**ready, public_base_url="https://book.example.com") == []
