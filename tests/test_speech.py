"""The offline model hears speech: G.711, word normalisation, the espeak-ng fixtures, and spoken
turns over a real WebSocket (page PCM16 24 kHz and phone μ-law 8 kHz) that end in tool calls.

Recognition is deterministic for a given input, so the fixture tests assert exactly the slots the
README's "Speech" table says each fixture recovers (``Fixture.recovered``). Every receive is
bounded by ``asyncio.timeout``; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import math
import multiprocessing
import sys
from array import array
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from offline_model import OfflineModel, accuracy, asr_worker, start
from offline_model.audio import synthesize
from offline_model.conversation import (
    NOT_HEARD,
    TRANSCRIPTION_FAILED,
    Conversation,
    Transcribe,
)
from offline_model.dialog import Call, Say, Slots, decide
from offline_model.intents import parse
from offline_model.response import ResponseRun
from offline_model.speech import Recognizer
from offline_model.stats import Stats
from offline_model.transcript import normalise
from protocol import g711
from protocol import realtime as p

TIMEOUT = 20.0  # a turn includes a decode in a freshly spawned worker process
SPEECH = Path(__file__).parent / "data" / "speech"
TODAY = date(2026, 6, 10)  # a Wednesday
TOOLS = [
    {"type": "function", "name": name, "description": name, "parameters": {"type": "object"}}
    for name in ("check_availability", "make_reservation", "lookup_reservation")
]

_spec = importlib.util.spec_from_file_location("make_fixtures", SPEECH / "make_fixtures.py")
assert _spec is not None and _spec.loader is not None
fixtures = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("make_fixtures", fixtures)  # dataclasses look their module up there
_spec.loader.exec_module(fixtures)
FIXTURES = {fixture.name: fixture for fixture in fixtures.FIXTURES}


def expected(fixture: Any, slot: str) -> Any:
    """The slot's value as the parser gives it, with relative dates resolved against TODAY."""
    value = fixture.slots[slot]
    if slot != "date":
        return value
    if value.startswith("+"):
        return (TODAY + timedelta(days=int(value[1:]))).isoformat()
    if value == "friday":
        return (TODAY + timedelta(days=(4 - TODAY.weekday()) % 7)).isoformat()
    month, day = (int(part) for part in value.split("-"))
    return date(TODAY.year, month, day).isoformat()


# --- G.711 μ-law -------------------------------------------------------------------------------


def test_mulaw_matches_the_g711_reference_points() -> None:
    assert (
        g711.decode(bytes([0xFF, 0x7F, 0x00, 0x80])) == array("h", [0, 0, -32124, 32124]).tobytes()
    )
    assert g711.encode(array("h", [0, -1, 32767, -32768, 1000]).tobytes()) == bytes(
        [0xFF, 0x7E, 0x80, 0x00, 0xCE]
    )


def test_mulaw_round_trips_every_code_and_keeps_loud_samples_within_its_step() -> None:
    codes = bytes(b for b in range(256) if b != 0x7F)  # 0x7F is "-0", decoded as 0 like 0xFF
    assert g711.encode(g711.decode(codes)) == codes
    samples = array("h", range(-32000, 32000, 7))
    back = array("h", g711.decode(g711.encode(samples.tobytes())))
    assert all(abs(a - b) <= max(16, abs(a) // 16) for a, b in zip(samples, back, strict=True))


# --- recognised words → text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (
            "book a table for four tomorrow at seven p m my name is ada lovelace "
            "phone nine eight two zero seven two seven two",
            "book a table for 4 tomorrow at 7 pm my name is Ada Lovelace phone 98207272",
        ),
        ("phone nine a to zero seven to seven two", "phone 98207272"),  # sound-alikes in a run
        ("a table for two for seven at seven", "a table for 2 for 7 at 7"),  # no run of three
        ("on december the twenty fourth at seven thirty", "on december 24th at 7:30"),
        ("the twenty first of march at half past eight", "the 21st of march at 8:30"),
        ("at eight forty five p m", "at 8:45 pm"),
        ("my name is grace hopper taylor h o p p e r", "my name is Grace Hopper"),
        ("my name is ada smith spelled l o v e l a c e", "my name is Ada Lovelace"),
        ("name is k n u t h", "name is Knuth"),
        ("", ""),
    ],
)
def test_recognised_words_become_parser_ready_text(words: str, text: str) -> None:
    assert normalise(words) == text


# --- the fixtures, decoded in this process ------------------------------------------------------


def heard(fixture: Any) -> str:
    """What the model makes of a fixture: 24 kHz as the page sends it, μ-law for the phone."""
    asr_worker.init()
    if fixture.rate == 8_000:
        pcm, _ = fixtures.read(fixture.path)
        words, _, _ = asr_worker.decode(g711.decode(g711.encode(pcm)), 8_000)
    else:
        words, _, _ = asr_worker.decode(fixtures.read_as(fixture, p.PCM16_RATE), p.PCM16_RATE)
    return normalise(words)


@pytest.mark.parametrize("name", [f.name for f in fixtures.FIXTURES if f.recovered])
def test_each_fixture_recovers_the_slots_the_readme_claims(name: str) -> None:
    fixture = FIXTURES[name]
    parsed = parse(heard(fixture), TODAY)
    got = {slot: getattr(parsed, slot) for slot in fixture.recovered}
    assert got == {slot: expected(fixture, slot) for slot in fixture.recovered}


def test_the_domain_model_only_knows_the_domain() -> None:
    fixture = FIXTURES["book-f2-130"]
    text = heard(fixture)
    vocabulary = asr_worker.vocabulary.words()
    assert {"table", "tomorrow", "lovelace", "nine"} <= vocabulary
    assert "ocean" not in vocabulary  # a general English word is not in the decoder at all
    assert text == "book a table for 4 tomorrow at 7 pm my name is Ada Lovelace phone 98207272"


# --- the state machine, without sockets ------------------------------------------------------


def tone_24k(ms: int) -> bytes:
    count = ms * 24
    return array(
        "h", (int(9000 * math.sin(2 * math.pi * 220 * n / 24000)) for n in range(count))
    ).tobytes()


def test_a_turn_waits_for_its_words_and_a_new_turn_folds_into_one_answer() -> None:
    talk = Conversation(model="gpt-realtime", stats=Stats(), today=lambda: TODAY, listen=True)
    talk.handle({"type": p.SESSION_UPDATE, "session": {"type": "realtime", "tools": TOOLS}})

    def speak(ms: int) -> list[Any]:
        out = talk.handle({"type": p.INPUT_AUDIO_APPEND, "audio": b64(tone_24k(ms))})
        return out + talk.handle({"type": p.INPUT_AUDIO_APPEND, "audio": b64(bytes(48 * 600))})

    first = speak(800)
    jobs = [out for out in first if isinstance(out, Transcribe)]
    assert len(jobs) == 1 and jobs[0].rate == p.PCM16_RATE
    # The turn's audio, from the VAD's prefix padding on: 800 ms of tone, then the silence
    # up to the stop (500 ms hangover), at most a second of it before the speech.
    assert 48 * 1300 <= len(jobs[0].pcm) <= 48 * (1000 + 800 + 600)
    assert not [out for out in first if isinstance(out, ResponseRun)]  # waits for the words
    refused = talk.handle({"type": p.RESPONSE_CREATE})
    assert refused[0]["error"]["code"] == "conversation_already_has_active_response"

    # The caller goes on talking before the words arrive: one answer, after both turns.
    second = speak(400)
    assert talk.transcribed(jobs[0].item_id, "book a table for 4 tomorrow at 7 pm") == []
    later = next(out for out in second if isinstance(out, Transcribe))
    answer = talk.transcribed(later.item_id, "my name is Ada Lovelace phone 98207272")
    run = next(out for out in answer if isinstance(out, ResponseRun))
    # Heard, not typed: the host reads the name and number back before it books.
    assert isinstance(run.plan, Say) and run.plan.listen == "confirm"
    assert "L O V E L A C E" in run.plan.text and "9 8 2 0, 7 2 7 2" in run.plan.text
    list(run.steps())
    yes = next(out for out in speak(300) if isinstance(out, Transcribe))
    assert yes.listen == "confirm"  # the recogniser is told what the host just asked
    run = next(out for out in talk.transcribed(yes.item_id, "yes") if isinstance(out, ResponseRun))
    assert run.plan == Call(
        "make_reservation",
        {
            "name": "Ada Lovelace",
            "phone_number": "98207272",
            "date": "2026-06-11",
            "time": "19:00",
            "party_size": 4,
        },
    )
    # The item keeps what was heard (conversation.item.retrieve shows it).
    item = talk.handle({"type": "conversation.item.retrieve", "item_id": later.item_id})
    assert item[0]["item"]["content"][0]["transcript"] == "my name is Ada Lovelace phone 98207272"


# --- spoken turns over the socket ---------------------------------------------------------------


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def recv(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            return json.loads(await self.ws.recv())

    async def until(self, event_type: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != event_type:
            seen.append(await self.recv())
        return seen

    async def update(self, **session: Any) -> dict[str, Any]:
        await self.send({"type": p.SESSION_UPDATE, "session": {"type": "realtime", **session}})
        return (await self.until(p.SESSION_UPDATED))[-1]["session"]

    async def speak(self, audio: bytes, frame: int, silence: bytes) -> None:
        """Stream ``audio`` in 20 ms appends, then a second of silence to end the turn."""
        for offset in range(0, len(audio), frame):
            chunk = audio[offset : offset + frame]
            await self.send({"type": p.INPUT_AUDIO_APPEND, "audio": b64(chunk)})
        for _ in range(50):
            await self.send({"type": p.INPUT_AUDIO_APPEND, "audio": b64(silence)})


def synthesize_speech(text: str, voice: str, speed: int) -> bytes:
    """espeak-ng's words as the page sends them (24 kHz PCM16)."""
    return accuracy.synthesize(text, voice, speed, p.PCM16_RATE)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[OfflineModel]:
    running = await start("127.0.0.1", 0, pace=0.0, asr_workers=1, timezone="UTC")
    yield running
    await running.close()


async def open_client(model: OfflineModel, **session: Any) -> Client:
    ws = await connect(model.ws_url + "?model=gpt-realtime", max_size=None)
    client = Client(ws)
    assert (await client.recv())["type"] == p.SESSION_CREATED
    await client.update(
        tools=TOOLS, audio={"input": {"transcription": {"model": "offline"}}}, **session
    )
    return client


@pytest.fixture
async def client(model: OfflineModel) -> AsyncIterator[Client]:
    session = await open_client(model)
    yield session
    await session.ws.close()


async def test_a_spoken_booking_is_transcribed_and_calls_make_reservation(
    client: Client, model: OfflineModel
) -> None:
    fixture = FIXTURES["book-f2-130"]
    before = model.stats["transcriptions"]
    await client.speak(fixtures.read_as(fixture, p.PCM16_RATE), 960, bytes(960))
    events = await client.until(p.INPUT_TRANSCRIPTION_COMPLETED)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == [p.SPEECH_STARTED, p.SPEECH_STOPPED, p.INPUT_AUDIO_COMMITTED]
    assert p.RESPONSE_CREATED not in kinds  # the answer waits for the words
    done = events[-1]
    assert done["item_id"] == events[0]["item_id"]
    assert done["transcript"] == heard(fixture)
    assert "Ada Lovelace" in done["transcript"]

    read_back = await client.until(p.OUTPUT_TRANSCRIPT_DONE)
    assert "A D A, L O V E L A C E, phone 9 8 2 0, 7 2 7 2" in read_back[-1]["transcript"]
    await client.until(p.RESPONSE_DONE)
    await client.speak(synthesize_speech("Yes, that's right.", "en-us+f2", 130), 960, bytes(960))
    response = await client.until(p.RESPONSE_DONE)
    call = next(e for e in response if e["type"] == p.FUNCTION_ARGS_DONE)
    assert call["name"] == "make_reservation"
    tomorrow = (date.today() + timedelta(days=1)).isoformat()  # the model runs in UTC here
    assert json.loads(call["arguments"]) == {
        "name": "Ada Lovelace",
        "phone_number": "98207272",
        "date": tomorrow,
        "time": "19:00",
        "party_size": 4,
    }
    stats = model.stats
    assert stats["transcriptions"] == before + 2
    assert stats["transcription_cpu_s"] > 0

    # The tool's output is answered in words, as for a typed turn.
    await client.send(
        {
            "type": p.ITEM_CREATE,
            "item": {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": json.dumps({"ok": True, "confirmation_number": "JG9RAQ"}),
            },
        }
    )
    await client.send({"type": p.RESPONSE_CREATE})
    spoken = await client.until(p.OUTPUT_TRANSCRIPT_DONE)
    assert "Your confirmation number is J G 9 R A Q" in spoken[-1]["transcript"]
    await client.until(p.RESPONSE_DONE)


async def test_without_transcription_configured_the_words_still_drive_the_dialog(
    model: OfflineModel,
) -> None:
    ws = await connect(model.ws_url + "?model=gpt-realtime", max_size=None)
    client = Client(ws)
    try:
        await client.recv()
        await client.update(tools=TOOLS)
        await client.speak(
            fixtures.read_as(FIXTURES["lookup-f2-150"], p.PCM16_RATE), 960, bytes(960)
        )
        events = await client.until(p.OUTPUT_TRANSCRIPT_DONE)
        assert p.INPUT_TRANSCRIPTION_COMPLETED not in [e["type"] for e in events]
        # Spoken: one question at a time, so the recogniser knows what the answer is.
        assert events[-1]["transcript"] == "What name is the booking under?"
        await client.until(p.RESPONSE_DONE)
    finally:
        await ws.close()


async def test_a_phone_call_in_mulaw_is_heard_and_answered_in_mulaw(model: OfflineModel) -> None:
    pcmu = {"type": "audio/pcmu"}
    client = await open_client(model)
    try:
        session = await client.update(audio={"input": {"format": pcmu}, "output": {"format": pcmu}})
        assert session["audio"]["input"]["format"] == pcmu
        fixture = FIXTURES["book-phone-f2-150"]
        pcm, _ = fixtures.read(fixture.path)
        await client.speak(g711.encode(pcm), 160, g711.encode(bytes(320)))
        events = await client.until(p.INPUT_TRANSCRIPTION_COMPLETED)
        started, stopped = events[0], events[1]
        assert (started["type"], stopped["type"]) == (p.SPEECH_STARTED, p.SPEECH_STOPPED)
        # The VAD's clock runs on μ-law's 8 bytes per ms: speech ends within the fixture.
        assert 0 < stopped["audio_end_ms"] - 500 <= len(pcm) // 16 + 20
        parsed = parse(events[-1]["transcript"], date.today())
        assert (parsed.intent, parsed.party_size) == ("book", 4)
        slots = Slots()
        slots.absorb(parsed)
        asked = decide(slots, {tool["name"] for tool in TOOLS})  # as if the words were typed
        assert isinstance(asked, Say)

        reply = await client.until(p.RESPONSE_DONE)
        deltas = [base64.b64decode(e["delta"]) for e in reply if e["type"] == p.OUTPUT_AUDIO_DELTA]
        said = next(e for e in reply if e["type"] == p.OUTPUT_TRANSCRIPT_DONE)["transcript"]
        assert said == asked.text
        assert deltas and all(len(delta) == 160 for delta in deltas[:-1])  # 20 ms frames
        assert b"".join(deltas) == g711.encode(synthesize(said, 8_000))
        done = reply[-1]["response"]
        assert done["audio"]["output"]["format"] == pcmu
    finally:
        await client.ws.close()


async def test_mulaw_vad_reports_milliseconds_on_the_8khz_clock(model: OfflineModel) -> None:
    client = await open_client(model)
    try:
        await client.update(audio={"input": {"format": {"type": "audio/pcmu"}}})
        tone = array("h", (int(9000 * math.sin(2 * math.pi * 220 * n / 8000)) for n in range(8000)))
        silence = g711.encode(bytes(320))
        await client.speak(g711.encode(tone.tobytes()), 160, silence)
        events = await client.until(p.SPEECH_STOPPED)
        assert events[-2]["type"] == p.SPEECH_STARTED and events[-2]["audio_start_ms"] == 0
        assert events[-1]["audio_end_ms"] == 1500  # 1 s of tone + the 500 ms silence hangover
        reply = await client.until(p.RESPONSE_DONE)
        said = next(e for e in reply if e["type"] == p.OUTPUT_TRANSCRIPT_DONE)["transcript"]
        assert said == NOT_HEARD
    finally:
        await client.ws.close()


async def test_an_unsupported_audio_format_is_refused_and_changes_nothing(client: Client) -> None:
    await client.send(
        {
            "type": p.SESSION_UPDATE,
            "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/ogg"}}}},
        }
    )
    error = (await client.until(p.ERROR))[-1]["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "session.audio.format")
    session = await client.update()
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


async def test_a_busy_recogniser_says_so_instead_of_answering_late() -> None:
    model = await start("127.0.0.1", 0, pace=0.0, asr_workers=1, asr_max_pending=0)
    client = await open_client(model)
    try:
        fixture = FIXTURES["lookup-f2-150"]
        await client.speak(fixtures.read_as(fixture, p.PCM16_RATE), 960, bytes(960))
        events = await client.until(TRANSCRIPTION_FAILED)
        assert events[-1]["error"]["code"] == "recognizer_busy"
        reply = await client.until(p.RESPONSE_DONE)
        said = next(e for e in reply if e["type"] == p.OUTPUT_TRANSCRIPT_DONE)["transcript"]
        assert said == NOT_HEARD
        assert model.stats["transcriptions_refused"] == 1
    finally:
        await client.ws.close()
        await model.close()


async def test_decoding_happens_in_another_process_while_other_calls_go_on(
    model: OfflineModel,
) -> None:
    """A long utterance keeps the one worker busy; meanwhile another call's typed turn is
    answered in full, because the event loop never decodes."""
    slow = await open_client(model)
    quick = await open_client(model)
    try:
        fixture = FIXTURES["book-f2-130"]
        long_turn = fixtures.read_as(fixture, p.PCM16_RATE) * 6  # about 40 s of speech
        await slow.speak(long_turn, 960 * 5, bytes(960))
        events = await slow.until(p.INPUT_AUDIO_COMMITTED)
        assert events[-1]["type"] == p.INPUT_AUDIO_COMMITTED  # decoding has been handed off

        await quick.send(
            {
                "type": p.ITEM_CREATE,
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Look up my reservation"}],
                },
            }
        )
        await quick.send({"type": p.RESPONSE_CREATE})
        await quick.until(p.RESPONSE_DONE)
        assert model.recognizer is not None and model.recognizer.pending == 1  # still decoding

        transcription = (await slow.until(p.INPUT_TRANSCRIPTION_COMPLETED))[-1]
        assert transcription["transcript"].count("Lovelace") >= 3
    finally:
        await slow.ws.close()
        await quick.ws.close()


async def test_a_killed_recogniser_worker_is_replaced_on_the_next_utterance() -> None:
    recognizer = Recognizer(workers=1)
    pcm = fixtures.read_as(FIXTURES["lookup-f2-150"], p.PCM16_RATE)
    try:
        before = {child.pid for child in multiprocessing.active_children()}
        assert (await recognizer.transcribe(pcm, p.PCM16_RATE)).text == (
            "look up my reservation please"
        )
        workers = [c for c in multiprocessing.active_children() if c.pid not in before]
        assert len(workers) == 1  # decoding ran in a process of its own
        workers[0].kill()
        workers[0].join(TIMEOUT)
        with pytest.raises(BrokenProcessPool):
            await recognizer.transcribe(pcm, p.PCM16_RATE)
        heard = await recognizer.transcribe(pcm, p.PCM16_RATE)
        assert heard.text == "look up my reservation please"
        assert recognizer.pending == 0
    finally:
        recognizer.close()
