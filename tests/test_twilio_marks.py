"""One Twilio mark per 100 ms of audio: what the caller is known to have heard, sans I/O."""

from __future__ import annotations

import base64
import json

from protocol import realtime as p
from server.realtime.session import ToClient, ToModel
from server.transports.twilio_media import MARK_EVERY_MS, TwilioMedia

SID = "MZ" + "0" * 32


def delta(ms: int, item: str = "i1") -> str:
    audio = base64.b64encode(b"\x7f" * (8 * ms)).decode()
    return json.dumps({"type": p.OUTPUT_AUDIO_DELTA, "item_id": item, "delta": audio})


def event(kind: str, **fields: object) -> str:
    return json.dumps({"type": kind, **fields})


def sent(outcomes: list[object]) -> list[str]:
    return [json.loads(o.text)["event"] for o in outcomes if isinstance(o, ToClient)]


def echo(media: TwilioMedia, outcomes: list[object]) -> None:
    for o in outcomes:
        if isinstance(o, ToClient) and '"mark"' in o.text:
            name = json.loads(o.text)["mark"]["name"]
            media.from_twilio(json.dumps({"event": "mark", "mark": {"name": name}}))


def test_a_mark_follows_every_100_ms_of_20_ms_deltas_and_the_end_of_a_response() -> None:
    assert MARK_EVERY_MS == 100
    media = TwilioMedia(stream_sid=SID)
    media.from_model(event(p.RESPONSE_CREATED, response={"id": "r1"}))
    kinds = [sent(media.from_model(delta(20))) for _ in range(12)]
    assert [n for n, k in enumerate(kinds) if k == ["media", "mark"]] == [4, 9]
    assert all(k == ["media"] for n, k in enumerate(kinds) if n not in (4, 9))
    assert sent(media.from_model(event(p.RESPONSE_DONE, response={"id": "r1"}))) == ["mark"]
    assert sent(media.from_model(event(p.RESPONSE_DONE, response={"id": "r2"}))) == []


def test_longer_deltas_get_a_mark_each() -> None:
    media = TwilioMedia(stream_sid=SID)
    assert [sent(media.from_model(delta(240))) for _ in range(3)] == [["media", "mark"]] * 3


def test_barge_in_truncates_at_the_last_mark_heard_never_later() -> None:
    """Heard: two marks (200 ms) and 60 ms more that no mark covers yet: truncated at 200."""
    media = TwilioMedia(stream_sid=SID)
    media.from_model(event(p.RESPONSE_CREATED, response={"id": "r1"}))
    outcomes: list[object] = []
    for _ in range(13):  # 260 ms sent
        outcomes += media.from_model(delta(20))
    echo(media, outcomes)  # Twilio played everything up to the second mark
    barge = media.from_model(event(p.SPEECH_STARTED, audio_start_ms=0))
    assert sent(barge) == ["clear"]
    (truncate,) = [json.loads(o.text) for o in barge if isinstance(o, ToModel)]
    assert truncate["audio_end_ms"] == 200
    assert media.from_model(delta(20)) == []  # the interrupted item's late audio is dropped


def test_the_goodbye_ends_the_call_once_its_last_audio_is_heard() -> None:
    media = TwilioMedia(stream_sid=SID)
    media.from_model(event(p.CALL_END_REQUESTED, reason="done"))
    media.from_model(event(p.RESPONSE_CREATED, response={"id": "r1"}))
    outcomes: list[object] = []
    for _ in range(3):  # 60 ms: less than a mark's worth
        outcomes += media.from_model(delta(20))
    done = media.from_model(event(p.RESPONSE_DONE, response={"id": "r1"}))
    assert sent(done) == ["mark"]  # the rest is marked, the call waits for it
    (mark,) = [json.loads(o.text)["mark"]["name"] for o in done if isinstance(o, ToClient)]
    ended = media.from_twilio(json.dumps({"event": "mark", "mark": {"name": mark}}))
    assert [type(o).__name__ for o in ended] == ["Stopped"]
