"""A silent caller: the host asks once whether they are there, then says goodbye and hangs up.

The rule is pure (`Silence`, `RelaySession.tick`), tested with a hand-moved clock; then end to end
on a phone call and a page, with a scripted model and short settings.
"""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest
import websockets

from protocol import realtime as p
from server.realtime.session import Close, RelaySession, ToClient, ToModel
from server.realtime.silence import Silence
from tests.conftest import serve_app
from tests.twilio_fakes import ScriptedModel, mulaw_frame, twilio_stream

TIMEOUT = 10


def session(prompt_s: float = 8.0, hangup_s: float = 10.0, bytes_per_ms: int = 48) -> RelaySession:
    return RelaySession(
        max_frame_chars=1 << 20,
        session_update={"type": "session.update", "session": {"type": "realtime"}},
        silence=Silence(prompt_s=prompt_s, hangup_s=hangup_s, bytes_per_ms=bytes_per_ms),
    )


def model(s: RelaySession, now: float, kind: str, **fields: object) -> None:
    s.model_text(orjson.dumps({"type": kind, **fields}).decode(), now)


def audio_delta(ms: int, bytes_per_ms: int = 48) -> str:
    payload = base64.b64encode(bytes(ms * bytes_per_ms)).decode()
    return orjson.dumps(
        {
            "type": "response.output_audio.delta",
            "event_id": "event_1234567890",
            "response_id": "resp_1234567890",
            "item_id": "item_1234567890",
            "output_index": 0,
            "content_index": 0,
            "delta": payload,
        }
    ).decode()


def reply(s: RelaySession, start: float, audio_ms: int, response_id: str = "r1") -> None:
    model(s, start, "response.created", response={"id": response_id})
    s.model_text(audio_delta(audio_ms), start)
    model(s, start + 0.1, "response.done", response={"id": response_id, "status": "completed"})


def kinds(actions: list) -> list[str]:
    out = []
    for action in actions:
        if isinstance(action, ToModel | ToClient):
            event = orjson.loads(action.text)
            out.append(event["type"])
        elif isinstance(action, Close):
            out.append(f"close {action.code} {action.reason}")
    return out


def test_the_clock_starts_when_the_reply_has_played_not_when_it_was_sent():
    s = session()
    reply(s, 0.0, audio_ms=5000)  # sent in 0.1 s, plays for 5 s
    assert s.tick(12.9) == []  # 5 s of audio + 7.9 s of silence
    assert kinds(s.tick(13.1)) == [p.ITEM_CREATE, p.RESPONSE_CREATE]


def test_prompt_then_goodbye_then_hang_up():
    s = session(prompt_s=8, hangup_s=10)
    reply(s, 0.0, audio_ms=1000)
    prompt = s.tick(9.2)
    assert kinds(prompt) == [p.ITEM_CREATE, p.RESPONSE_CREATE]
    assert "still there" in orjson.loads(prompt[0].text)["item"]["content"][0]["text"]
    assert s.tick(9.3) == []  # asked once: the response is under way
    reply(s, 10.0, audio_ms=2000, response_id="r2")  # "are you still there?" plays until 12 s
    assert s.tick(21.9) == []
    goodbye = s.tick(22.1)
    assert kinds(goodbye) == [p.ITEM_CREATE, p.RESPONSE_CREATE, p.CALL_END_REQUESTED]
    reply(s, 23.0, audio_ms=1500, response_id="r3")  # the goodbye plays until 24.5 s
    assert s.tick(24.4) == []
    assert kinds(s.tick(24.6)) == ["close 1000 caller silent"]
    assert s.tick(30.0) == []


def test_caller_speech_or_typing_resets_it():
    s = session(prompt_s=8, hangup_s=10)
    reply(s, 0.0, audio_ms=0)
    model(s, 5.0, p.SPEECH_STARTED, audio_start_ms=10, item_id="u1")
    assert s.tick(20.0) == []  # the caller is talking: nobody is waiting
    reply(s, 21.0, audio_ms=0, response_id="r2")
    assert kinds(s.tick(29.2)) == [p.ITEM_CREATE, p.RESPONSE_CREATE]
    reply(s, 30.0, audio_ms=0, response_id="r3")
    typed = {
        "type": p.ITEM_CREATE,
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "yes"}],
        },
    }
    s.client_text(orjson.dumps(typed).decode(), 31.0)
    assert s.tick(45.0) == []  # back to the start: no goodbye


def test_no_clock_while_a_tool_runs():
    s = session(prompt_s=1, hangup_s=1)
    model(s, 0.0, "response.created", response={"id": "r1"})
    model(
        s,
        0.0,
        "response.function_call_arguments.done",
        response_id="r1",
        call_id="c1",
        name="lookup_reservation",
        arguments="{}",
    )
    model(s, 0.1, "response.done", response={"id": "r1", "status": "completed"})
    assert s.tick(60.0) == []


def test_phone_audio_is_timed_at_8_bytes_per_ms():
    s = session(bytes_per_ms=8)
    model(s, 0.0, "response.created", response={"id": "r1"})
    s.model_text(audio_delta(4000, bytes_per_ms=8), 0.0)
    model(s, 0.1, "response.done", response={"id": "r1", "status": "completed"})
    assert s.tick(11.9) == [] and s.tick(12.1) != []


def test_programs_on_the_sdk_get_no_silence_handling():
    s = RelaySession(max_frame_chars=1 << 20, session_update={})
    assert s.tick(1e9) == []


# --- end to end ---------------------------------------------------------------------------------


@pytest.fixture
async def scripted():
    async with ScriptedModel().running() as running:
        yield running


async def test_a_silent_phone_caller_is_asked_then_the_call_ends(settings, database, scripted):
    quick = settings.model_copy(
        update={"openai_base_url": scripted.url, "silence_prompt_s": 0.3, "silence_hangup_s": 0.3}
    )
    async with serve_app(quick) as live, twilio_stream(live.ws_url) as twilio:
        await twilio.start("CA0100", {"caller": "+6598207272"})
        model_side = await scripted.session()
        await model_side.until("response.create")  # the greeting
        await model_side.say("response.created", response={"id": "r1"})
        await model_side.say("response.done", response={"id": "r1", "status": "completed"})
        await twilio.media(base64.b64encode(b"\xff" * 160).decode())  # μ-law silence
        prompt = [await model_side.until("conversation.item.create")]
        assert "still there" in prompt[0]["item"]["content"][0]["text"]
        await model_side.say("response.created", response={"id": "r2"})
        await model_side.say("response.done", response={"id": "r2", "status": "completed"})
        goodbye = await model_side.until(
            "response.create", after=model_side.received.index(prompt[0]) + 2
        )
        assert goodbye
        await model_side.say("response.created", response={"id": "r3"})
        await model_side.say(
            "response.output_audio.delta", response_id="r3", item_id="i3", delta=mulaw_frame(1)
        )
        await model_side.say("response.done", response={"id": "r3", "status": "completed"})
        mark = await twilio.until("mark")
        await twilio.mark(mark["mark"]["name"])
        assert await twilio.closed() == 1000


async def test_a_silent_page_is_asked_then_closed(settings, database, scripted):
    quick = settings.model_copy(
        update={"openai_base_url": scripted.url, "silence_prompt_s": 0.2, "silence_hangup_s": 0.2}
    )
    async with (
        serve_app(quick) as live,
        websockets.connect(
            f"{live.ws_url}/v1/realtime",
            origin=websockets.Origin(live.url),  # a browser
        ) as page,
    ):
        model_side = await scripted.session()
        await model_side.until("session.update")
        await model_side.say("response.created", response={"id": "r1"})
        await model_side.say("response.done", response={"id": "r1", "status": "completed"})
        prompt = await model_side.until("conversation.item.create")
        assert "still there" in prompt["item"]["content"][0]["text"]
        await model_side.say("response.created", response={"id": "r2"})
        await model_side.say("response.done", response={"id": "r2", "status": "completed"})
        second = await model_side.until(
            "conversation.item.create", after=model_side.received.index(prompt) + 1
        )
        assert "goodbye" in second["item"]["content"][0]["text"]
        await model_side.say("response.created", response={"id": "r3"})
        await model_side.say("response.done", response={"id": "r3", "status": "completed"})
        events = []
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                while True:
                    events.append(orjson.loads(await page.recv()))
        assert page.close_code == 1000 and page.close_reason == "caller silent"
        assert p.CALL_END_REQUESTED in [e["type"] for e in events]


def test_where_openai_plays_the_audio_the_clock_starts_when_playout_stops():
    s = session(prompt_s=8, hangup_s=10)
    model(s, 0.0, "response.created", response={"id": "r1"})
    model(s, 0.1, p.PLAYOUT_STARTED, response_id="r1")
    model(s, 0.5, "response.done", response={"id": "r1", "status": "completed"})
    assert s.tick(20.0) == []  # still playing to the caller: nobody is waiting yet
    model(s, 21.0, p.PLAYOUT_STOPPED, response_id="r1")
    assert s.tick(28.9) == []
    assert kinds(s.tick(29.1)) == [p.ITEM_CREATE, p.RESPONSE_CREATE]
