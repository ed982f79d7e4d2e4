"""The same JSON value gets the same treatment however it is written.

The relay reads some frames by a prefix (`{"type":"…` / `{"event":"media"…`) to spare a parse.
Each event the relay treats specially is fed here twice to fresh state — once compact with its
type first (the form the fast paths recognise), once in another key order and with other
spacing — and everything that comes out, and every figure left behind, must be the same.
Sans I/O: the session (browser path), Twilio's adapter (phone) and the SIP control (sideband).
The phone case over real sockets is in `test_twilio.py`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from protocol import realtime as p
from server.realtime.peek import event_type, peek_type
from server.realtime.session import Close, Note, RelaySession, RunTool, ToClient, ToModel
from server.realtime.silence import Silence
from server.transports.sip_control import SipControl
from server.transports.twilio_media import TwilioMedia

AUDIO = "AAAAAAAA//8AAP//AAA="  # a few base64 samples (a multiple of 3 bytes)
MULAW = "f39/f39/f39/f39/f39/f39/"  # 18 bytes of μ-law


def canonical(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def variants(event: dict[str, Any]) -> dict[str, str]:
    """The same event, written otherwise: its first key last, spaces around colons, newlines."""
    reordered = dict(reversed(list(event.items())))
    return {
        "reordered": canonical(reordered),
        "spaced": json.dumps(event, separators=(", ", " : ")),
        "reordered_spaced": " " + json.dumps(reordered, indent=1),
        "escaped_key": canonical(event).replace('"type":', '"\\u0074ype":', 1)
        if "type" in event
        else canonical(event).replace('"event":', '"\\u0065vent":', 1),
    }


GENERATED = re.compile(r"(evt|relay)_[0-9a-f]+$")  # ids the relay makes (a process-wide counter)
LAYOUTS = ["reordered", "spaced", "reordered_spaced", "escaped_key"]


def _without_generated_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_generated_ids(v)
            for k, v in value.items()
            if not (k == "event_id" and GENERATED.match(str(v)))
        }
    if isinstance(value, list):
        return [_without_generated_ids(v) for v in value]
    return value


def normalised(outcome: Any) -> Any:
    """Frames compared as JSON values (a relay may forward a frame's own text); generated
    event ids dropped (they differ between any two sessions)."""
    if isinstance(outcome, ToClient | ToModel):
        value = _without_generated_ids(json.loads(outcome.text))
        return (type(outcome).__name__, value)
    if isinstance(outcome, RunTool | Close | Note):
        return (type(outcome).__name__, dataclasses.asdict(outcome))
    if dataclasses.is_dataclass(outcome):
        return (type(outcome).__name__, dataclasses.asdict(outcome))  # type: ignore[arg-type]
    return outcome


# --- the browser path: RelaySession -----------------------------------------------------------


def new_session() -> RelaySession:
    return RelaySession(
        max_frame_chars=100_000,
        session_update={"type": p.SESSION_UPDATE, "session": {"type": "realtime"}},
        silence=Silence(prompt_s=5, hangup_s=5, bytes_per_ms=48),
    )


def session_state(s: RelaySession) -> dict[str, Any]:
    silence = dataclasses.asdict(s.silence) if s.silence else None
    return {
        "stats": s.stats.as_event_fields(),
        "history": list(s.history),
        "quiet": s.quiet,
        "pending": s.pending_calls,
        "silence": silence,
        "notes": [normalised(n) for n in s.notes],
    }


# Each step: (time, the model event that comes in). Together they touch every model event the
# session acts on: latency (speech stopped -> first audio), silence (speech started, audio length,
# playout), responses, tool calls, errors for our own response.create, transcripts.
MODEL_STEPS: list[tuple[float, dict[str, Any]]] = [
    (1.0, {"type": p.SPEECH_STARTED, "event_id": "e1", "audio_start_ms": 10, "item_id": "u1"}),
    (1.2, {"type": p.SPEECH_STOPPED, "event_id": "e2", "audio_end_ms": 900, "item_id": "u1"}),
    (1.3, {"type": p.INPUT_TRANSCRIPTION_COMPLETED, "event_id": "e3", "transcript": "a table"}),
    (1.4, {"type": p.RESPONSE_CREATED, "event_id": "e4", "response": {"id": "r1"}}),
    (
        1.5,
        {
            "type": p.OUTPUT_AUDIO_DELTA,
            "event_id": "e5",
            "response_id": "r1",
            "item_id": "i1",
            "output_index": 0,
            "content_index": 0,
            "delta": AUDIO * 40,
        },
    ),
    (1.6, {"type": p.OUTPUT_TRANSCRIPT_DONE, "event_id": "e6", "transcript": "For how many?"}),
    (1.6, {"type": p.OUTPUT_TEXT_DONE, "event_id": "e6b", "text": "For how many?"}),
    (
        1.7,
        {
            "type": p.FUNCTION_ARGS_DONE,
            "event_id": "e7",
            "response_id": "r1",
            "call_id": "c1",
            "name": "make_reservation",
            "arguments": '{"party_size": 2}',
        },
    ),
    (
        1.8,
        {
            "type": p.RESPONSE_DONE,
            "event_id": "e8",
            "response": {"id": "r1", "status": "completed", "usage": {"total_tokens": 7}},
        },
    ),
    (1.9, {"type": p.PLAYOUT_STARTED, "event_id": "e9", "response_id": "r1"}),
    (2.0, {"type": p.PLAYOUT_STOPPED, "event_id": "e10", "response_id": "r1"}),
    (2.1, {"type": "response.output_audio_transcript.delta", "event_id": "e11", "delta": "x"}),
]


def run_model_steps(layout: str | None) -> list[Any]:
    """The steps through a fresh session, written canonically or in `layout`; everything seen."""
    s = new_session()
    seen: list[Any] = [normalised(a) for a in s.start(0.0)]
    for now, event in MODEL_STEPS:
        text = canonical(event) if layout is None else variants(event)[layout]
        seen.append([normalised(a) for a in s.model_text(text, now)])
        seen.append(session_state(s))
        if event["type"] == p.RESPONSE_DONE:  # the tool's output, then our response.create
            actions = s.tool_finished("c1", '{"ok":true}', None, 3.0, True)
            seen.append([normalised(a) for a in actions])
            create_id = json.loads(actions[-1].text)["event_id"]  # type: ignore[union-attr]
            refusal = {
                "type": p.ERROR,
                "event_id": "e8b",
                "error": {"type": "invalid_request_error", "event_id": create_id},
            }
            text = canonical(refusal) if layout is None else variants(refusal)[layout]
            seen.append([normalised(a) for a in s.model_text(text, now)])
            seen.append(session_state(s))
    return seen


@pytest.mark.parametrize("layout", LAYOUTS)
def test_model_events_in_any_layout_are_treated_as_the_canonical_ones(layout: str) -> None:
    expected = run_model_steps(None)
    # the canonical run really did act: latency, a tool call, history, silence, the stats
    state = expected[-1]
    assert state["stats"]["reply_latency_ms"]["count"] == 1
    assert state["stats"]["audio_frames_out"] == 1
    flat = [o for step in expected if isinstance(step, list) for o in step]
    assert any(o[0] == "RunTool" for o in flat)
    assert state["history"]
    assert run_model_steps(layout) == expected


CLIENT_EVENTS: list[dict[str, Any]] = [
    {"type": p.INPUT_AUDIO_APPEND, "event_id": "c1", "audio": AUDIO},
    {"type": p.INPUT_AUDIO_COMMIT, "event_id": "c2"},
    {"type": p.INPUT_AUDIO_CLEAR, "event_id": "c3"},
    {
        "type": p.SESSION_UPDATE,
        "event_id": "c4",
        "session": {"type": "realtime", "audio": {"output": {"voice": "marin"}}},
    },
    {
        "type": p.ITEM_CREATE,
        "event_id": "c5",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "two at eight"}],
        },
    },
    {"type": p.RESPONSE_CREATE, "event_id": "c6", "response": {"output_modalities": ["audio"]}},
    {"type": p.RESPONSE_CANCEL, "event_id": "c7"},
    {"type": p.ITEM_TRUNCATE, "event_id": "c8", "item_id": "i1", "content_index": 0},
    {"type": "session.delete", "event_id": "c9"},  # refused, naming its event_id
    {
        "type": p.ITEM_CREATE,
        "event_id": "c10",
        "item": {"type": "function_call_output", "call_id": "x", "output": "{}"},
    },
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("event", CLIENT_EVENTS, ids=lambda e: str(e["event_id"]))
def test_client_events_in_any_layout_are_treated_as_the_canonical_ones(
    event: dict[str, Any], layout: str
) -> None:
    fast, slow = new_session(), new_session()
    expected = [normalised(a) for a in fast.client_text(canonical(event), 1.0)]
    got = [normalised(a) for a in slow.client_text(variants(event)[layout], 1.0)]
    assert got == expected
    assert session_state(slow) == session_state(fast)
    if event["type"] == p.INPUT_AUDIO_APPEND:
        assert fast.stats.audio_frames_in == slow.stats.audio_frames_in == 1


# --- the phone path: TwilioMedia ----------------------------------------------------------------


def twilio_state(media: TwilioMedia) -> dict[str, Any]:
    return {
        "stream_sid": media.stream_sid,
        "playback": dataclasses.asdict(media.playback),
        "digits": media.digits,
        "interrupted": sorted(media.interrupted),
        "after_playback": normalised(media.after_playback),
        "armed": media.armed,
        "responding": media.responding,
    }


SID = "MZ" + "0" * 32


def audio_delta(n: int, item: str = "i1") -> dict[str, Any]:
    return {
        "type": p.OUTPUT_AUDIO_DELTA,
        "event_id": f"d{n}",
        "response_id": "r1",
        "item_id": item,
        "output_index": 0,
        "content_index": 0,
        "delta": MULAW * 50,  # 900 bytes: 112 ms of μ-law, so a mark follows each
    }


# (side, message): "twilio" messages come from Twilio, "model" events from the model (or our
# page events). Marks are echoed by name, read from what the adapter sent.
PHONE_STEPS: list[tuple[str, Any]] = [
    ("twilio", {"event": "connected", "protocol": "Call", "version": "1.0.0"}),
    (
        "twilio",
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": SID,
            "start": {
                "streamSid": SID,
                "accountSid": "AC" + "1" * 32,
                "callSid": "CA" + "2" * 32,
                "tracks": ["inbound"],
                "customParameters": {"caller": "+6598207272"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        },
    ),
    (
        "twilio",
        {
            "event": "media",
            "sequenceNumber": "2",
            "streamSid": SID,
            "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": MULAW},
        },
    ),
    ("twilio", {"event": "media", "streamSid": SID, "media": {"payload": "not base64!"}}),
    ("model", {"type": p.RESPONSE_CREATED, "event_id": "m1", "response": {"id": "r1"}}),
    ("model", audio_delta(1)),
    ("model", audio_delta(2)),
    ("model", audio_delta(3)),
    ("mark", 0),  # the first mark echoed: the caller heard the first delta
    ("model", {"type": p.SPEECH_STARTED, "event_id": "m2", "audio_start_ms": 5, "item_id": "u"}),
    ("model", audio_delta(4)),  # the interrupted item's late audio is dropped
    ("model", audio_delta(5, item="i2")),
    ("twilio", {"event": "dtmf", "streamSid": SID, "dtmf": {"track": "inbound", "digit": "4"}}),
    ("twilio", {"event": "dtmf", "streamSid": SID, "dtmf": {"track": "inbound", "digit": "#"}}),
    ("model", {"type": p.CALL_TRANSFER_REQUESTED, "event_id": "m3", "number": "+6561234567"}),
    ("model", {"type": p.RESPONSE_CREATED, "event_id": "m4", "response": {"id": "r2"}}),
    ("model", audio_delta(6, item="i3")),
    ("model", {"type": p.RESPONSE_DONE, "event_id": "m5", "response": {"id": "r2"}}),
    ("mark", -1),  # the goodbye has been heard: the transfer follows
    ("model", {"type": p.CALL_END_REQUESTED, "event_id": "m6", "reason": "done"}),
    ("twilio", {"event": "stop", "streamSid": SID, "stop": {}}),
]


def run_phone_steps(layout: str | None) -> list[Any]:
    media = TwilioMedia()
    marks: list[str] = []
    seen: list[Any] = []
    for side, message in PHONE_STEPS:
        if side == "mark":
            echoed = {"event": "mark", "streamSid": SID, "mark": {"name": marks[message]}}
            side, message = "twilio", echoed
        text = canonical(message) if layout is None else variants(message)[layout]
        outcomes = media.from_twilio(text) if side == "twilio" else media.from_model(text)
        for outcome in outcomes:
            if isinstance(outcome, ToClient) and '"mark"' in outcome.text:
                marks.append(json.loads(outcome.text)["mark"]["name"])
        seen.append([normalised(o) for o in outcomes])
        seen.append(twilio_state(media))
    return seen


@pytest.mark.parametrize("layout", LAYOUTS)
def test_twilio_and_model_messages_in_any_layout_are_treated_as_the_canonical_ones(
    layout: str,
) -> None:
    expected = run_phone_steps(None)
    flat = [o for step in expected if isinstance(step, list) for o in step]
    names = [o[0] for o in flat if isinstance(o, tuple)]
    # the canonical run carried audio both ways, barged in, took digits, transferred, stopped
    assert {"ToModel", "ToClient", "Started", "Transfer", "Stopped", "Invalid"} <= set(names)
    assert any(o[0] == "ToModel" and o[1]["type"] == p.ITEM_TRUNCATE for o in flat)
    assert run_phone_steps(layout) == expected


# --- the SIP sideband: SipControl ---------------------------------------------------------------

SIP_STEPS: list[dict[str, Any]] = [
    {"type": p.SPEECH_STARTED, "event_id": "s1", "audio_start_ms": 5, "item_id": "u"},
    {
        "type": p.ITEM_ADDED,
        "event_id": "s2",
        "item": {"type": "message", "role": "user", "content": []},
    },
    {"type": p.CALL_END_REQUESTED, "event_id": "s3", "reason": "done"},
    {"type": p.RESPONSE_CREATED, "event_id": "s4", "response": {"id": "r1"}},
    {"type": p.RESPONSE_DONE, "event_id": "s5", "response": {"id": "r1"}},
    {"type": p.PLAYOUT_STOPPED, "event_id": "s6", "response_id": "r1"},
]


def run_sip_steps(layout: str | None) -> list[Any]:
    control = SipControl()
    seen: list[Any] = []
    for event in SIP_STEPS:
        text = canonical(event) if layout is None else variants(event)[layout]
        seen.append([normalised(o) for o in control.from_model(text)])
    return seen


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sideband_events_in_any_layout_are_treated_as_the_canonical_ones(layout: str) -> None:
    expected = run_sip_steps(None)
    assert expected[-1] and expected[-1][0][0] == "Hangup"
    assert run_sip_steps(layout) == expected


# --- the prefix itself --------------------------------------------------------------------------

SAME_VALUE: list[tuple[str, str | None]] = [
    ('{"type":"response.done","x":{"type":"error"}}', "response.done"),  # nested: parsed
    ('{"type":"response.done","type":"error"}', "error"),  # the last duplicate wins
    ('{"type":"response.done","\\u0074ype":"error"}', "error"),
    ('{"type":"response.output_audio.delta","delta":"\\u0041"}', "response.output_audio.delta"),
    ('{"type":"a\\u002eb"}', "a.b"),
]


@pytest.mark.parametrize(("text", "kind"), SAME_VALUE)
def test_the_prefix_never_disagrees_with_the_parser(text: str, kind: str | None) -> None:
    peeked = peek_type(text)
    assert event_type(text)[0] == kind
    assert peeked is None or peeked == kind


DISGUISED = '{"type":"response.output_audio.delta","item_id":"i1","delta":"AAAA","type":"x"}'


def test_a_duplicate_type_is_read_as_the_parser_reads_it() -> None:
    """A frame that looks like audio by its prefix but is an "x" event to any JSON parser."""
    s = new_session()
    assert s.model_text(DISGUISED, 1.0) == [ToClient(DISGUISED)]
    assert s.stats.audio_frames_out == 0
    media = TwilioMedia(stream_sid=SID)
    assert media.from_model(DISGUISED) == []
    assert media.playback.sent == 0
