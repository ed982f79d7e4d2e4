"""Caller audio in larger appends (`MODEL_AUDIO_CHUNK_MS`), sans I/O: same bytes, same order."""

from __future__ import annotations

import base64
import json

import pytest

from server.realtime.session import ToModel
from server.transports.twilio_media import TwilioMedia


def media(n: int, size: int = 160) -> str:
    audio = bytes((n + i) % 256 for i in range(size))
    return json.dumps({"event": "media", "media": {"payload": base64.b64encode(audio).decode()}})


def appended(outcomes: list[object]) -> list[bytes]:
    events = [json.loads(o.text) for o in outcomes if isinstance(o, ToModel)]
    return [base64.b64decode(e["audio"]) for e in events if e["type"].endswith("append")]


@pytest.mark.parametrize("chunk_ms", [0, 20])
def test_frames_as_received_keep_their_own_text(chunk_ms: int) -> None:
    twilio = TwilioMedia(chunk_bytes=chunk_ms * 8)
    frame = media(1)
    (append,) = twilio.from_twilio(frame)
    assert isinstance(append, ToModel)
    assert json.loads(append.text)["audio"] == json.loads(frame)["media"]["payload"]


def test_five_frames_make_one_append_of_100_ms_with_every_byte_in_order() -> None:
    twilio = TwilioMedia(chunk_bytes=800)
    outcomes: list[object] = []
    counts = []
    for n in range(12):  # 160-byte frames: not a multiple of 3, so base64 cannot just be joined
        got = twilio.from_twilio(media(n))
        counts.append(len(got))
        outcomes += got
    assert counts == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    expected = b"".join(
        base64.b64decode(json.loads(media(n))["media"]["payload"]) for n in range(10)
    )
    assert b"".join(appended(outcomes)) == expected
    assert [len(a) for a in appended(outcomes)] == [800, 800]


def test_keypad_entry_takes_the_audio_gathered_before_it() -> None:
    twilio = TwilioMedia(chunk_bytes=800)
    twilio.from_twilio(media(1))
    twilio.from_twilio(media(2))
    assert twilio.from_twilio(json.dumps({"event": "dtmf", "dtmf": {"digit": "5"}})) == []
    entered = twilio.from_twilio(json.dumps({"event": "dtmf", "dtmf": {"digit": "#"}}))
    kinds = [json.loads(o.text)["type"] for o in entered if isinstance(o, ToModel)]
    assert kinds == ["input_audio_buffer.append", "conversation.item.create", "response.create"]
    assert len(appended(entered)[0]) == 320


def test_a_bad_payload_is_refused_and_gathers_nothing() -> None:
    twilio = TwilioMedia(chunk_bytes=800)
    bad = json.dumps({"event": "media", "media": {"payload": "not base64!"}})
    assert [type(o).__name__ for o in twilio.from_twilio(bad)] == ["Invalid"]
    assert not twilio.gathered
