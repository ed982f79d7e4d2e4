"""The SIP adapter's pure decisions: who calls, and when the call ends or is handed over."""

from __future__ import annotations

import datetime as dt
import time

import orjson
import pytest
from openai import AsyncOpenAI, InvalidWebhookSignatureError

from offline_model import dialog
from offline_model.intents import parse
from offline_model.sip import incoming_event, new_secret, sign
from protocol import realtime as p
from server.transports.sip_control import (
    AwaitPlayout,
    CallerActive,
    Hangup,
    Refer,
    SipControl,
    caller_number,
    read_incoming,
)


@pytest.mark.parametrize(
    ("header", "number"),
    [
        ('"Ann" <sip:+6591234567@carrier.example;user=phone>;tag=a1', "+6591234567"),
        ("<sip:6591234567@10.0.0.1>", "6591234567"),
        ("<tel:+44-20-7946-0958>", "+442079460958"),
        ('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=x', None),
        ("<sip:alice@example.com>", None),
        ("", None),
    ],
)
def test_caller_number_from_the_from_header(header, number):
    assert caller_number(header) == number


def test_read_incoming_takes_the_call_id_and_numbers():
    event = incoming_event("rtc_1", "+6591234567", "+6560000000")
    incoming = read_incoming(event["data"])
    assert incoming is not None
    assert (incoming.call_id, incoming.caller, incoming.to) == (
        "rtc_1",
        "+6591234567",
        "+6560000000",
    )
    assert read_incoming({"sip_headers": []}) is None
    assert read_incoming("nope") is None


def test_the_offline_models_signature_is_what_the_sdk_verifies():
    secret = new_secret()
    body = orjson.dumps(incoming_event("rtc_1", "+6591234567", "+6560000000"))
    ts = int(time.time())
    headers = {"webhook-id": "wh_1", "webhook-timestamp": str(ts)}
    webhooks = AsyncOpenAI(api_key="unused").webhooks
    webhooks.verify_signature(
        body, {**headers, "webhook-signature": sign(secret, "wh_1", ts, body)}, secret=secret
    )
    with pytest.raises(InvalidWebhookSignatureError):
        webhooks.verify_signature(
            body,
            {**headers, "webhook-signature": sign(new_secret(), "wh_1", ts, body)},
            secret=secret,
        )


def event(kind: str, **fields) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def goodbye_so_far(control: SipControl, page_event: str) -> list:
    """The tool's page event, then the host's goodbye response, generated in full."""
    outcomes = control.from_model(page_event)
    outcomes += control.from_model(event(p.RESPONSE_CREATED, response={"id": "resp_2"}))
    outcomes += control.from_model(event(p.RESPONSE_DONE, response={"id": "resp_2"}))
    return outcomes


def test_end_call_hangs_up_only_once_the_goodbye_has_played():
    control = SipControl()
    page = orjson.dumps(p.custom_event(p.CALL_END_REQUESTED, reason="done")).decode()
    assert goodbye_so_far(control, page) == [AwaitPlayout("resp_2")]
    assert control.from_model(event("output_audio_buffer.stopped", response_id="resp_1")) == []
    outcomes = control.from_model(event("output_audio_buffer.stopped", response_id="resp_2"))
    assert outcomes == [Hangup("host ended the call")]
    assert control.from_model(event("output_audio_buffer.stopped", response_id="resp_2")) == []


def test_the_response_that_called_the_tool_does_not_count_as_the_goodbye():
    control = SipControl()
    control.from_model(orjson.dumps(p.custom_event(p.CALL_END_REQUESTED)).decode())
    # The tool finished before its own response was done: that response is not the goodbye.
    assert control.from_model(event(p.RESPONSE_DONE, response={"id": "resp_1"})) == []
    assert control.from_model(event("output_audio_buffer.stopped", response_id="resp_1")) == []


def test_transfer_refers_to_a_tel_uri_and_a_silent_playout_times_out():
    control = SipControl()
    page = orjson.dumps(p.custom_event(p.CALL_TRANSFER_REQUESTED, number="+6561234567")).decode()
    assert goodbye_so_far(control, page) == [AwaitPlayout("resp_2")]
    assert control.playout_timed_out("resp_other") == []
    assert control.playout_timed_out("resp_2") == [Refer("tel:+6561234567")]
    assert control.playout_timed_out("resp_2") == []


def test_the_callers_speech_and_turns_count_as_activity():
    control = SipControl()
    assert control.from_model(event(p.SPEECH_STARTED)) == [CallerActive()]
    user_item = event(p.ITEM_ADDED, item={"role": "user", "type": "message"})
    assert control.from_model(user_item) == [CallerActive()]
    host_item = event(p.ITEM_ADDED, item={"role": "assistant", "type": "message"})
    assert control.from_model(host_item) == []
    assert control.from_model(event(p.RESPONSE_DONE, response={"id": "r"})) == []


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("That's all, thank you. Goodbye!", "end"),
        ("Can I speak to a person please?", "transfer"),
        ("Please transfer me", "transfer"),
        ("Book a table for 2 tomorrow at 7pm, bye", "book"),  # a booking beats a goodbye
    ],
)
def test_the_offline_dialog_ends_and_transfers_calls(text, intent):
    parsed = parse(text, dt.date(2026, 12, 2))
    assert parsed.intent == intent
    slots = dialog.Slots()
    slots.absorb(parsed)
    step = dialog.decide(slots, {"end_call", "transfer_call", "make_reservation"})
    if intent == "book":  # the booking goes on: it asks for what is missing
        assert isinstance(step, dialog.Say) and "name" in step.text
    else:
        expected = {"end": "end_call", "transfer": "transfer_call"}[intent]
        assert isinstance(step, dialog.Call) and step.name == expected
