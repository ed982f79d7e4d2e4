"""The offline Realtime model: parser units, then real WebSocket sessions over loopback.

Every receive is bounded by ``asyncio.timeout``; ordering, not sleeping, is what synchronises
the tests (e.g. a ``session.update`` after an item proves no response was started in between).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect

from offline_model import OfflineModel, dialog, start
from offline_model.audio import EnergyVad, synthesize
from offline_model.conversation import NOT_HEARD
from offline_model.dialog import Call, Say, Slots, answer, ask, decide, spell
from offline_model.echo import echo_frame
from offline_model.intents import parse
from protocol import realtime as p

TIMEOUT = 5.0
ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 6, 10)  # a Wednesday
TOOLS = [
    {"type": "function", "name": name, "description": name, "parameters": {"type": "object"}}
    for name in ("check_availability", "make_reservation", "lookup_reservation")
]
BOOKING = "Book a table for 4 tomorrow at 7pm, my name is Alice Smith, phone 9123 4567"
SILENCE_20MS = bytes(960)


def tone(ms: int, amplitude: float = 0.3) -> bytes:
    """A loud 220 Hz tone, PCM16 24 kHz: what the energy VAD should call speech."""
    count = ms * 24
    peak = amplitude * 32767
    samples = (int(peak * math.sin(2 * math.pi * 220 * n / 24000)) for n in range(count))
    return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- fixtures and a tiny client --------------------------------------------------------------


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[OfflineModel]:
    running = await start("127.0.0.1", 0, pace=0.02)
    yield running
    await running.close()


class Session:
    """A raw WebSocket client that decodes events and never waits unboundedly."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            return json.loads(await self.ws.recv())

    async def expect(self, event_type: str) -> dict[str, Any]:
        event = await self.recv()
        assert event["type"] == event_type, event
        return event

    async def until(self, event_type: str) -> list[dict[str, Any]]:
        """Every event up to and including the first of ``event_type``."""
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != event_type:
            seen.append(await self.recv())
        return seen

    async def say(self, text: str) -> None:
        await self.send(
            {
                "type": p.ITEM_CREATE,
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
        )
        await self.expect(p.ITEM_ADDED)
        await self.expect(p.ITEM_DONE)

    async def update(self, **session: Any) -> dict[str, Any]:
        await self.send({"type": p.SESSION_UPDATE, "session": {"type": "realtime", **session}})
        return (await self.expect(p.SESSION_UPDATED))["session"]


async def open_session(model: OfflineModel, **session: Any) -> Session:
    ws = await connect(
        model.ws_url + "?model=gpt-realtime",
        additional_headers={"Authorization": "Bearer test"},
        max_size=None,
    )
    client = Session(ws)
    await client.expect(p.SESSION_CREATED)
    if session:
        await client.update(**session)
    return client


@pytest.fixture
async def client(model: OfflineModel) -> AsyncIterator[Session]:
    session = await open_session(model, tools=TOOLS)
    yield session
    await session.ws.close()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


# --- intent parser -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BOOKING, dict(intent="book", name="Alice Smith", phone="91234567", date="2026-06-11",
                       time="19:00", party_size=4)),
        ("Reserve a table for two on Friday at 7:30 pm under Smith, +65 9123-4567",
         dict(intent="book", name="Smith", phone="+6591234567", date="2026-06-12", time="19:30",
              party_size=2)),
        ("reservation for four people on 2026-12-01 at 19:00. Note: window seat",
         dict(intent="book", date="2026-12-01", time="19:00", party_size=4, notes="window seat")),
        ("party of 6 next wednesday at 8, this is Bob calling, number 555-123-4567",
         dict(intent="book", name="Bob", phone="5551234567", date="2026-06-17", time="20:00",
              party_size=6)),
        ("Can you look up my reservation? name is carol, phone 8123 4567",
         dict(intent="lookup", name="Carol", phone="81234567")),
        ("Do I have a booking? I'm Dave", dict(intent="lookup", name="Dave")),
        ("Look up my reservation, phone 9820 7272, name Ada Lovelace",
         dict(intent="lookup", name="Ada Lovelace", phone="98207272")),
        ("Check my reservation please", dict(intent="lookup")),
        ("Is a table available on December 3rd at noon for 3?",
         dict(intent="availability", date="2026-12-03", time="12:00", party_size=3)),
        ("any tables free the day after tomorrow at 6:45pm?",
         dict(intent="availability", date="2026-06-12", time="18:45")),
        ("3 March at 7", dict(date="2027-03-03", time="19:00")),  # past month rolls over
        ("Dec 3rd", dict(date="2026-12-03")),
        ("3 December", dict(date="2026-12-03")),
        ("today at 07:30", dict(date="2026-06-10", time="07:30")),
        ("wednesday", dict(date="2026-06-10")),
        ("next wednesday", dict(date="2026-06-17")),
        ("tonight for twelve guests", dict(date="2026-06-10", party_size=12)),
        ("at 11 for 5", dict(time="11:00", party_size=5)),
        ("i'm looking for a table for 2", dict(intent="book", party_size=2)),
        ("My name's O'Brien and my number is (555) 123 4567",
         dict(name="O'Brien", phone="5551234567")),
        ("February 30", {}),
        ("hello there", {}),
    ],
)  # fmt: skip
def test_parse_extracts_slots(text: str, expected: dict[str, Any]) -> None:
    parsed = parse(text, TODAY)
    found = {key: value for key, value in vars(parsed).items() if value is not None}
    assert found == expected


def test_dialog_asks_for_missing_slots_in_one_sentence() -> None:
    assert ask("book", ["name", "phone"]) == (
        "What name should I put the booking under, and what phone number?"
    )
    slots = Slots()
    slots.absorb(parse("a table for 2 tomorrow at 7pm", TODAY))
    assert decide(slots, {"make_reservation"}).text.endswith("and what phone number?")
    slots.absorb(parse("I'm Eve, 9123 4567", TODAY))
    assert decide(slots, {"make_reservation"}) == Call(
        "make_reservation",
        {"name": "Eve", "phone_number": "91234567", "date": "2026-06-11", "time": "19:00",
         "party_size": 2},
    )  # fmt: skip
    # Without the tool in the session the model answers in words.
    assert "can't make bookings" in decide(slots, set()).text


def test_dialog_reads_tool_outputs() -> None:
    call = Call("make_reservation", {"name": "Eve", "date": "2026-06-11", "time": "19:30",
                                     "party_size": 2})  # fmt: skip
    said = answer(call, json.dumps({"ok": True, "confirmation_code": "xk-42q"}), Slots())
    assert "Thursday, June 11 at 7:30 pm" in said and "X K 4 2 Q" in said
    failed = json.dumps({"ok": False, "error": {"message": "That time is fully booked."}})
    assert answer(call, failed, Slots()) == "That time is fully booked."
    refused = {"ok": False, "error": "reservation_exists", "message": "You already have one."}
    assert answer(call, json.dumps(refused), Slots()) == "You already have one."
    lookup = Call("lookup_reservation", {"name": "Eve", "phone_number": "91234567"})
    missing = {"ok": True, "found": False, "message": "I could not find a reservation."}
    assert answer(lookup, json.dumps(missing), Slots()) == "I could not find a reservation."
    assert spell("ABC234") == "A B C 2 3 4"


def test_energy_vad_and_synthesis() -> None:
    vad = EnergyVad(prefix_padding_ms=300, silence_duration_ms=500)
    events = vad.feed(bytes(24_000) + tone(1000) + bytes(48_000))
    assert [(e.kind, e.ms) for e in events] == [("start", 200), ("stop", 2000)]
    speech = synthesize("one two three four five six seven eight nine ten")
    assert len(speech) == 600 * 48 and EnergyVad().feed(speech)[0].kind == "start"


def test_echo_frame_splices_payload() -> None:
    payload = b64(os.urandom(960))
    for raw in (
        json.dumps({"type": p.INPUT_AUDIO_APPEND, "audio": payload}),
        json.dumps({"audio": payload, "type": p.INPUT_AUDIO_APPEND}, separators=(",", ":")),
    ):
        frame, size = echo_frame(raw) or ("", 0)
        event = json.loads(frame)
        assert (event["type"], event["delta"], size) == (p.OUTPUT_AUDIO_DELTA, payload, 960)
    assert echo_frame(json.dumps({"type": p.RESPONSE_CREATE})) is None
    assert echo_frame(json.dumps({"type": "x", "audio": payload})) is None


# --- session lifecycle and errors ----------------------------------------------------------


async def test_session_created_and_update_merges(model: OfflineModel) -> None:
    ws = await connect(model.ws_url + "?model=gpt-realtime")
    session = Session(ws)
    created = (await session.expect(p.SESSION_CREATED))["session"]
    assert created["type"] == "realtime" and created["id"].startswith("sess_")
    assert created["model"] == "gpt-realtime" and created["tools"] == []
    assert created["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert created["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert created["audio"]["output"]["voice"] == "marin"

    updated = await session.update(
        instructions="Be brief.", tools=TOOLS, audio={"output": {"voice": "cedar"}}
    )
    assert updated["instructions"] == "Be brief." and len(updated["tools"]) == 3
    assert updated["audio"]["output"] == {**created["audio"]["output"], "voice": "cedar"}
    assert updated["audio"]["input"] == created["audio"]["input"]  # untouched branch kept
    await ws.close()


async def test_bad_events_get_error_events_and_session_goes_on(client: Session) -> None:
    await client.ws.send("{not json")
    assert (await client.expect(p.ERROR))["error"]["code"] == "invalid_json"
    await client.send({"type": "no.such.event", "event_id": "evt_mine"})
    error = (await client.expect(p.ERROR))["error"]
    assert (error["type"], error["code"], error["event_id"]) == (
        "invalid_request_error",
        "invalid_value",
        "evt_mine",
    )
    await client.send({"type": p.SESSION_UPDATE, "event_id": "evt_2", "session": {}})
    error = (await client.expect(p.ERROR))["error"]
    assert (error["code"], error["param"], error["event_id"]) == (
        "missing_required_parameter",
        "session.type",
        "evt_2",
    )
    unknown = {"type": "function_call_output", "call_id": "call_nope", "output": "{}"}
    await client.send({"type": p.ITEM_CREATE, "item": unknown})
    assert (await client.expect(p.ERROR))["error"]["param"] == "item.call_id"
    await client.send({"type": p.RESPONSE_CANCEL})
    assert (await client.expect(p.ERROR))["error"]["code"] == "response_cancel_not_active"
    await client.send({"type": p.INPUT_AUDIO_COMMIT})
    assert (await client.expect(p.ERROR))["error"]["code"] == "input_audio_buffer_commit_empty"
    await client.send({"type": p.INPUT_AUDIO_CLEAR})
    await client.expect(p.INPUT_AUDIO_CLEARED)
    await client.update(instructions="still alive")


# --- typed turns and the tool-call loop ----------------------------------------------------


async def test_typed_booking_calls_tool_then_reads_confirmation(
    model: OfflineModel, client: Session
) -> None:
    await client.say(BOOKING)
    await client.update(instructions="x")  # proves no response started without response.create
    await client.send({"type": p.RESPONSE_CREATE})
    events = await client.until(p.RESPONSE_DONE)
    assert types(events) == [
        p.RESPONSE_CREATED,
        p.OUTPUT_ITEM_ADDED,
        p.ITEM_ADDED,
        *[p.FUNCTION_ARGS_DELTA] * (len(events) - 7),
        p.FUNCTION_ARGS_DONE,
        p.OUTPUT_ITEM_DONE,
        p.ITEM_DONE,
        p.RESPONSE_DONE,
    ]
    assert len(events) - 7 >= 2
    added, done = events[1]["item"], events[-4]
    assert added["type"] == "function_call" and added["arguments"] == ""
    assert added["name"] == done["name"] == "make_reservation"
    assert added["call_id"] == done["call_id"] and done["item_id"] == added["id"]
    assert done["response_id"] == events[0]["response"]["id"] and done["output_index"] == 0
    deltas = "".join(e["delta"] for e in events if e["type"] == p.FUNCTION_ARGS_DELTA)
    assert deltas == done["arguments"]
    tomorrow = (model.today() + timedelta(days=1)).isoformat()
    assert json.loads(done["arguments"]) == {
        "name": "Alice Smith", "phone_number": "91234567", "date": tomorrow, "time": "19:00",
        "party_size": 4,
    }  # fmt: skip
    response = events[-1]["response"]
    assert response["status"] == "completed"
    assert response["output"][0]["call_id"] == done["call_id"]

    output = json.dumps({"ok": True, "confirmation_code": "ABC234"})
    await client.send({"type": p.ITEM_CREATE, "item": {"type": "function_call_output",
                                                       "call_id": done["call_id"],
                                                       "output": output}})  # fmt: skip
    await client.expect(p.ITEM_ADDED)
    await client.expect(p.ITEM_DONE)
    await client.send({"type": p.RESPONSE_CREATE})
    events = await client.until(p.RESPONSE_DONE)
    kinds = types(events)
    assert kinds[:4] == [p.RESPONSE_CREATED, p.OUTPUT_ITEM_ADDED, p.ITEM_ADDED,
                         p.CONTENT_PART_ADDED]  # fmt: skip
    assert kinds[-6:] == [p.OUTPUT_AUDIO_DONE, p.OUTPUT_TRANSCRIPT_DONE, p.CONTENT_PART_DONE,
                          p.OUTPUT_ITEM_DONE, p.ITEM_DONE, p.RESPONSE_DONE]  # fmt: skip
    transcript = events[-5]["transcript"]
    assert "A B C 2 3 4" in transcript and "Alice Smith" in transcript
    spoken = "".join(e["delta"] for e in events if e["type"] == p.OUTPUT_TRANSCRIPT_DELTA)
    assert spoken == transcript
    chunks = [base64.b64decode(e["delta"]) for e in events if e["type"] == p.OUTPUT_AUDIO_DELTA]
    assert len(chunks) >= 3 and all(len(c) == 4800 for c in chunks[:-1])
    response = events[-1]["response"]
    assert response["status"] == "completed"
    assert response["output"][0]["content"][0] == {"type": "output_audio", "transcript": transcript}
    usage = response["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert usage["output_token_details"]["audio_tokens"] > 0
    assert set(usage["input_token_details"]) >= {"text_tokens", "audio_tokens"}


async def test_missing_slots_get_a_question(client: Session) -> None:
    await client.say("I'd like to book a table for 2 tomorrow at 7pm")
    await client.send({"type": p.RESPONSE_CREATE})
    events = await client.until(p.RESPONSE_DONE)
    done = next(e for e in events if e["type"] == p.OUTPUT_TRANSCRIPT_DONE)
    assert done["transcript"] == "What name should I put the booking under, and what phone number?"
    assert p.FUNCTION_ARGS_DONE not in types(events)


async def test_lookup_call_and_found_summary(client: Session) -> None:
    await client.say("Can you look up my reservation? The name is Carol, phone +65 8123 4567")
    await client.send({"type": p.RESPONSE_CREATE})
    call = next(e for e in await client.until(p.RESPONSE_DONE) if e["type"] == p.FUNCTION_ARGS_DONE)
    assert call["name"] == "lookup_reservation"
    assert json.loads(call["arguments"]) == {"phone_number": "+6581234567", "name": "Carol"}
    reservation = {"name": "Carol", "reservation_date": "2026-12-03", "reservation_time": "19:00",
                   "party_size": 3, "confirmation_number": "Q7Z234"}  # fmt: skip
    found = {"ok": True, "found": True, "confirmation_number_spelled": "Q 7 Z 2 3 4",
             "reservation": reservation}  # fmt: skip
    await client.send({"type": p.ITEM_CREATE, "item": {"type": "function_call_output",
                                                       "call_id": call["call_id"],
                                                       "output": json.dumps(found)}})  # fmt: skip
    await client.until(p.ITEM_DONE)
    await client.send({"type": p.RESPONSE_CREATE})
    events = await client.until(p.RESPONSE_DONE)
    transcript = next(e for e in events if e["type"] == p.OUTPUT_TRANSCRIPT_DONE)["transcript"]
    assert "Thursday, December 3 at 7 pm" in transcript and "Q 7 Z 2 3 4" in transcript


async def test_text_modality_streams_text(client: Session) -> None:
    await client.update(output_modalities=["text"])
    await client.send({"type": p.RESPONSE_CREATE})
    events = await client.until(p.RESPONSE_DONE)
    assert p.OUTPUT_AUDIO_DELTA not in types(events) and p.OUTPUT_TEXT_DELTA in types(events)
    text = next(e for e in events if e["type"] == p.OUTPUT_TEXT_DONE)["text"]
    assert text.startswith("Hello!")


# --- one response at a time, cancel, truncate ----------------------------------------------


async def test_second_response_create_is_refused(client: Session) -> None:
    await client.send({"type": p.RESPONSE_CREATE})
    await client.expect(p.RESPONSE_CREATED)
    await client.send({"type": p.RESPONSE_CREATE, "event_id": "evt_again"})
    events = await client.until(p.ERROR)
    assert events[-1]["error"]["code"] == "conversation_already_has_active_response"
    assert events[-1]["error"]["event_id"] == "evt_again"
    assert p.RESPONSE_DONE not in types(events)
    await client.until(p.RESPONSE_DONE)


async def test_cancel_and_truncate(client: Session) -> None:
    await client.send({"type": p.RESPONSE_CREATE})
    await client.until(p.OUTPUT_AUDIO_DELTA)
    await client.send({"type": p.RESPONSE_CANCEL})
    events = await client.until(p.RESPONSE_DONE)
    assert types(events)[-6:] == [p.OUTPUT_AUDIO_DONE, p.OUTPUT_TRANSCRIPT_DONE,
                                  p.CONTENT_PART_DONE, p.OUTPUT_ITEM_DONE, p.ITEM_DONE,
                                  p.RESPONSE_DONE]  # fmt: skip
    response = events[-1]["response"]
    assert response["status"] == "cancelled"
    assert response["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    item = response["output"][0]
    assert item["status"] == "incomplete"

    await client.send({"type": p.ITEM_TRUNCATE, "item_id": item["id"], "content_index": 0,
                       "audio_end_ms": 100})  # fmt: skip
    truncated = await client.expect(p.ITEM_TRUNCATED)
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (item["id"], 100)
    await client.send({"type": p.ITEM_TRUNCATE, "item_id": item["id"], "content_index": 0,
                       "audio_end_ms": 60_000})  # fmt: skip
    assert (await client.expect(p.ERROR))["error"]["param"] == "audio_end_ms"
    await client.send({"type": p.ITEM_TRUNCATE, "item_id": "item_unknown", "content_index": 0,
                       "audio_end_ms": 0})  # fmt: skip
    assert (await client.expect(p.ERROR))["error"]["param"] == "item_id"


# --- audio in: VAD and barge-in ------------------------------------------------------------


async def test_server_vad_commits_a_turn_and_answers(client: Session) -> None:
    speech = tone(1000)
    for offset in range(0, len(speech), 4800):
        chunk = speech[offset : offset + 4800]
        await client.send({"type": p.INPUT_AUDIO_APPEND, "audio": b64(chunk)})
    for _ in range(50):
        await client.send({"type": p.INPUT_AUDIO_APPEND, "audio": b64(SILENCE_20MS)})
    started = await client.expect(p.SPEECH_STARTED)
    assert started["audio_start_ms"] == 0
    stopped = await client.expect(p.SPEECH_STOPPED)
    assert stopped["item_id"] == started["item_id"] and stopped["audio_end_ms"] == 1500
    committed = await client.expect(p.INPUT_AUDIO_COMMITTED)
    assert committed["item_id"] == started["item_id"]
    item = (await client.expect(p.ITEM_ADDED))["item"]
    assert item["content"] == [{"type": "input_audio", "transcript": None}]
    await client.expect(p.ITEM_DONE)
    events = await client.until(p.RESPONSE_DONE)
    transcript = next(e for e in events if e["type"] == p.OUTPUT_TRANSCRIPT_DONE)["transcript"]
    assert transcript == NOT_HEARD  # a pure tone holds no words for the recogniser


async def test_barge_in_cancels_the_response(client: Session) -> None:
    await client.send({"type": p.RESPONSE_CREATE})
    await client.until(p.OUTPUT_AUDIO_DELTA)
    await client.send({"type": p.INPUT_AUDIO_APPEND, "audio": b64(tone(200))})
    events = await client.until(p.RESPONSE_DONE)
    assert p.SPEECH_STARTED in types(events)
    assert types(events).index(p.SPEECH_STARTED) < types(events).index(p.RESPONSE_DONE)
    response = events[-1]["response"]
    assert response["status"] == "cancelled"
    assert response["status_details"]["reason"] == "turn_detected"


# --- transport: echo, stats, auth, SDK, CLI ------------------------------------------------


async def test_echo_mode_is_byte_exact_and_counted() -> None:
    async with OfflineModel(echo=True) as echo:
        client = await open_session(echo)
        payloads = [os.urandom(4800), os.urandom(961), os.urandom(2)]
        for payload in payloads:
            await client.send({"type": p.INPUT_AUDIO_APPEND, "audio": b64(payload)})
            delta = await client.expect(p.OUTPUT_AUDIO_DELTA)
            assert base64.b64decode(delta["delta"]) == payload
            assert (delta["response_id"], delta["item_id"]) == ("resp_echo", "item_echo")
        await client.update(instructions="other events still work")
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"http://127.0.0.1:{echo.port}/stats")).json()
        total = sum(map(len, payloads))
        assert stats["audio_bytes_received"] == stats["audio_bytes_sent"] == total
        assert stats["sessions_active"] == 1 and stats["last_authorization_seen"] is True
        await client.ws.close()


async def test_stats_count_audio_and_sessions(model: OfflineModel) -> None:
    before = model.stats
    client = await open_session(model, audio={"input": {"turn_detection": None}})
    await client.send({"type": p.INPUT_AUDIO_APPEND, "audio": b64(bytes(4800))})
    await client.send({"type": p.INPUT_AUDIO_COMMIT})
    await client.expect(p.INPUT_AUDIO_COMMITTED)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{model.port}/stats")
    assert response.headers["content-type"] == "application/json"
    stats = response.json()
    assert stats["audio_bytes_received"] == before["audio_bytes_received"] + 4800
    assert stats["sessions_opened"] == before["sessions_opened"] + 1
    assert stats["last_model"] == "gpt-realtime"
    await client.ws.close()
    async with asyncio.timeout(TIMEOUT):  # every task of the session ended
        await model.wait_for_sessions(before["sessions_active"])


async def test_handshake_checks_path_model_and_key() -> None:
    async with OfflineModel(api_key="sk-right") as guarded:
        base = f"ws://127.0.0.1:{guarded.port}"
        for url, headers, status in [
            (guarded.ws_url + "?model=gpt-realtime", {}, 401),
            (guarded.ws_url + "?model=gpt-realtime", {"Authorization": "Bearer sk-wrong"}, 401),
            (guarded.ws_url, {"Authorization": "Bearer sk-right"}, 400),
            (base + "/v1/other?model=gpt-realtime", {"Authorization": "Bearer sk-right"}, 404),
        ]:
            with pytest.raises(websockets.InvalidStatus) as rejected:
                await connect(url, additional_headers=headers)
            assert rejected.value.response.status_code == status
        assert guarded.stats["last_authorization_seen"] is True
        ws = await connect(
            guarded.ws_url + "?model=gpt-realtime",
            additional_headers={"Authorization": "Bearer sk-right"},
        )
        await Session(ws).expect(p.SESSION_CREATED)
        await ws.close()


async def test_openai_sdk_connects_and_gets_parsed_events(model: OfflineModel) -> None:
    sdk = AsyncOpenAI(api_key="sk-test", base_url=model.url)
    async with sdk.realtime.connect(model="gpt-realtime") as conn:

        async def recv() -> Any:
            async with asyncio.timeout(TIMEOUT):
                return await conn.recv()

        assert (await recv()).type == "session.created"
        await conn.session.update(session={"type": "realtime", "tools": TOOLS})
        updated = await recv()
        assert updated.type == "session.updated" and len(updated.session.tools) == 3
        await conn.conversation.item.create(
            item={"type": "message", "role": "user",
                  "content": [{"type": "input_text", "text": BOOKING}]}
        )  # fmt: skip
        await conn.response.create()
        seen = []
        while not seen or seen[-1].type != "response.done":
            seen.append(await recv())
        call = next(e for e in seen if e.type == "response.function_call_arguments.done")
        assert call.name == "make_reservation" and json.loads(call.arguments)["party_size"] == 4
        assert seen[-1].response.status == "completed"
        assert seen[-1].response.output[0].call_id == call.call_id


async def test_cli_prints_url_and_exits_cleanly_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "offline_model", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(TIMEOUT * 2):
            line = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"offline model listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        ws = await connect(f"ws://127.0.0.1:{match[2]}/v1/realtime?model=gpt-realtime")
        await Session(ws).expect(p.SESSION_CREATED)
        await ws.close()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_a_refused_session_update_changes_nothing() -> None:
    from offline_model.conversation import Conversation
    from offline_model.stats import Stats

    conversation = Conversation(model="gpt-realtime", stats=Stats(), today=date.today)
    conversation.opening()
    bad = {
        "type": "session.update",
        "event_id": "u1",
        "session": {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "abc"}}},
        },
    }
    (error,) = conversation.handle_raw(json.dumps(bad))
    assert error["type"] == "error" and error["error"]["code"] == "invalid_value"
    assert error["error"]["event_id"] == "u1"
    good = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"output": {"voice": "cedar"}}},
    }
    (updated,) = conversation.handle_raw(json.dumps(good))
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"]["output"]["voice"] == "cedar"
    assert updated["session"]["audio"]["input"]["turn_detection"]["threshold"] == 0.5


# --- changing and cancelling by voice --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("move my booking to 8pm", dict(intent="change", time="20:00")),
        ("Make it 6 people", dict(intent="change", party_size=6)),
        ("Can you reschedule to Friday? I'm Ada, 9820 7272",
         dict(intent="change", date="2026-06-12", name="Ada", phone="98207272")),
        ("cancel my reservation, name Ada Lovelace, phone 9820 7272",
         dict(intent="cancel", name="Ada Lovelace", phone="98207272")),
        ("yes please", dict(answer="yes")),
        ("No, leave it", dict(answer="no")),
        ("make it happen", {}),
    ],
)  # fmt: skip
def test_parse_change_and_cancel(text: str, expected: dict[str, Any]) -> None:
    parsed = parse(text, TODAY)
    assert {key: value for key, value in vars(parsed).items() if value is not None} == expected


def test_a_change_is_read_back_and_needs_a_yes() -> None:
    tools = {"change_reservation", "cancel_reservation"}
    slots = Slots()
    slots.absorb(parse("move my booking to 8pm", TODAY))
    assert decide(slots, tools) == Say(
        "What name is the booking under, and what phone number did you book with?"
    )
    slots.absorb(parse("Ada Lovelace, 9820 7272", TODAY))
    assert "name is" in decide(slots, tools).text  # "Ada Lovelace" alone is not a name cue
    slots.absorb(parse("my name is Ada Lovelace, 9820 7272", TODAY))
    assert decide(slots, tools) == Say(
        "To confirm: change the booking under Ada Lovelace to 8 pm. Shall I go ahead?"
    )
    slots.absorb(parse("yes", TODAY))
    assert decide(slots, tools) == Call(
        "change_reservation", {"phone_number": "98207272", "name": "Ada Lovelace", "time": "20:00"}
    )
    moved = {"name": "Ada", "party_size": 4, "reservation_date": "2026-06-11",
             "reservation_time": "20:00"}  # fmt: skip
    output = {"ok": True, "status": "changed", "confirmation_number_spelled": "Q 7 Z",
              "reservation": moved}  # fmt: skip
    said = answer(Call("change_reservation", {}), json.dumps(output), slots)
    assert said == (
        "Done, Ada: your booking is now a table for 4 on Thursday, June 11 at 8 pm. "
        "Your confirmation number stays Q 7 Z."
    )
    # A yes said earlier never confirms a later request; a no changes nothing.
    slots.absorb(parse("cancel my reservation", TODAY))
    assert decide(slots, tools).text.startswith("To confirm: cancel the booking under Ada")
    slots.absorb(parse("no", TODAY))
    assert decide(slots, tools) == Say(dialog.KEPT)
    assert slots.intent is None


def test_make_it_during_a_booking_amends_the_booking() -> None:
    slots = Slots()
    slots.absorb(parse("Book a table tomorrow at 7pm for 4", TODAY))
    slots.absorb(parse("actually make it 6 people", TODAY))
    assert (slots.intent, slots.party_size) == ("book", 6)


def test_make_it_in_a_booking_turn_is_still_a_booking() -> None:
    parsed = parse("Book a table for 2 tomorrow, make it 7pm, I'm Eve", TODAY)
    assert (parsed.intent, parsed.time, parsed.party_size) == ("book", "19:00", 2)
