"""Phone calls over Twilio Media Streams, against a fake Twilio on real HTTP and WebSockets.

The voice webhook is posted like Twilio posts it (form-encoded, signed by the `twilio`
library); the media stream is Twilio's message sequence over a real WebSocket; the model is
either scripted event by event (exact barge-in and goodbye sequences) or the offline model.
"""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import offline_model
from server.transports.twilio_webhook import mint_stream_token
from tests.conftest import LiveServer, serve_app
from tests.twilio_fakes import (
    FakeTwilioRest,
    ScriptedModel,
    mulaw_frame,
    sign_webhook,
    twilio_stream,
)

AUTH = "twilio-auth-token-for-tests"
ACCOUNT = "AC" + "1" * 32
CALLER = "+6598207272"
TIMEOUT = 10


def form(call_sid: str = "CA0001", caller: str = CALLER) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "CallSid": call_sid,
        "From": caller,
        "To": "+6560000000",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedModel]:
    async with ScriptedModel().running() as model:
        yield model


@pytest.fixture
async def phone_server(settings, database, scripted) -> AsyncIterator[LiveServer]:
    """No TWILIO_AUTH_TOKEN: the local-testing mode, talking to the scripted model."""
    open_settings = settings.model_copy(
        update={"openai_base_url": scripted.url, "twilio_auth_token": None}
    )
    async with serve_app(open_settings) as live:
        yield live


@pytest.fixture
async def signed_server(settings, database, scripted) -> AsyncIterator[LiveServer]:
    signed = settings.model_copy(
        update={"openai_base_url": scripted.url, "twilio_auth_token": SecretStr(AUTH)}
    )
    async with serve_app(signed) as live:
        yield live


def parse_twiml(text: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(text)
    assert root.tag == "Response"
    stream = root.find("./Connect/Stream")
    assert stream is not None, text
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), parameters


async def post_voice(
    live: LiveServer, params: dict[str, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as http:
        return await http.post("/twilio/voice", data=params, headers=headers or {})


# --- the voice webhook --------------------------------------------------------------------------


async def test_signed_webhook_answers_twiml_with_a_stream_and_a_token(signed_server, scripted):
    params = form()
    url = f"{signed_server.url}/twilio/voice"
    signature = sign_webhook(AUTH, url, params)
    response = await post_voice(signed_server, params, {"X-Twilio-Signature": signature})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    stream_url, parameters = parse_twiml(response.text)
    assert stream_url == f"{signed_server.ws_url}/twilio/media-stream"  # http base -> ws://
    assert parameters["caller"] == CALLER
    assert parameters["token"].count(".") == 1
    assert scripted.sessions == []  # nothing opened until the stream starts


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "wrong"])
async def test_unsigned_or_forged_webhooks_are_refused(signed_server, scripted, signature):
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = await post_voice(signed_server, form(), headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    assert scripted.sessions == []


async def test_a_signature_for_other_parameters_is_refused(signed_server):
    url = f"{signed_server.url}/twilio/voice"
    signature = sign_webhook(AUTH, url, form(caller="+6511111111"))
    response = await post_voice(signed_server, form(), {"X-Twilio-Signature": signature})
    assert response.status_code == 403


async def test_public_base_url_names_the_stream_and_is_what_twilio_signed(
    settings, database, scripted
):
    public = settings.model_copy(
        update={
            "openai_base_url": scripted.url,
            "twilio_auth_token": SecretStr(AUTH),
            "public_base_url": "https://book.example.com",
        }
    )
    async with serve_app(public) as live:
        params = form()
        signature = sign_webhook(AUTH, "https://book.example.com/twilio/voice", params)
        response = await post_voice(live, params, {"X-Twilio-Signature": signature})
        assert response.status_code == 200
        stream_url, _ = parse_twiml(response.text)
        assert stream_url == "wss://book.example.com/twilio/media-stream"


async def test_forwarded_proto_and_host_make_the_public_address(phone_server):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "abc.tunnel.example"}
    response = await post_voice(phone_server, form(), headers)
    stream_url, parameters = parse_twiml(response.text)
    assert stream_url == "wss://abc.tunnel.example/twilio/media-stream"
    assert "token" not in parameters  # no TWILIO_AUTH_TOKEN: streams need no token


async def test_at_capacity_the_caller_hears_a_busy_message(settings, database, scripted):
    full = settings.model_copy(update={"openai_base_url": scripted.url, "max_sessions": 1})
    async with serve_app(full) as live:
        live.app.state.switchboard.reserved = 1  # every line taken
        response = await post_voice(live, form())
        root = ET.fromstring(response.text)
        assert root.find("Say") is not None and root.find("Hangup") is not None
        assert root.find("Connect") is None


# --- the media stream ---------------------------------------------------------------------------


async def test_a_stream_without_a_valid_token_is_closed_before_any_model_session(
    signed_server, scripted
):
    good_for_another_call = mint_stream_token(AUTH, "CA_other", CALLER, 4e9)
    expired = mint_stream_token(AUTH, "CA0001", CALLER, 1.0)
    for token in ["", "garbage", good_for_another_call, expired]:
        async with twilio_stream(signed_server.ws_url) as twilio:
            await twilio.start("CA0001", {"caller": CALLER, "token": token})
            assert await twilio.closed() == 1008
    assert scripted.sessions == []


async def test_the_signed_token_opens_the_call_with_the_signed_number(signed_server, scripted):
    params = form()
    signature = sign_webhook(AUTH, f"{signed_server.url}/twilio/voice", params)
    response = await post_voice(signed_server, params, {"X-Twilio-Signature": signature})
    _, parameters = parse_twiml(response.text)
    async with twilio_stream(signed_server.ws_url) as twilio:
        # a forged caller parameter beside a valid token changes nothing
        await twilio.start("CA0001", {**parameters, "caller": "+6511111111"})
        model = await scripted.session()
        update = await model.until("session.update")
        assert CALLER in update["session"]["instructions"]
        assert "+6511111111" not in update["session"]["instructions"]


async def test_the_session_is_pcmu_both_ways_and_the_host_speaks_first(phone_server, scripted):
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0002", {"caller": CALLER})
        model = await scripted.session()
        update = await model.until("session.update")
        audio = update["session"]["audio"]
        assert audio["input"]["format"] == {"type": "audio/pcmu"}
        assert audio["output"]["format"] == {"type": "audio/pcmu"}
        instructions = update["session"]["instructions"]
        assert "phone call" in instructions and CALLER in instructions
        tools = {t["name"] for t in update["session"]["tools"]}
        assert "end_call" in tools and "make_reservation" in tools
        assert "transfer_call" not in tools  # no TRANSFER_NUMBER
        # the greeting is asked for at once, before the caller says anything
        kinds = model.kinds()
        assert kinds.index("response.create") == kinds.index("session.update") + 1


async def test_audio_is_carried_byte_for_byte_both_ways_with_a_mark_per_100_ms_and_at_the_end(
    phone_server, scripted
):
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0003", {"caller": CALLER})
        model = await scripted.session()
        await model.until("response.create")
        sent = [mulaw_frame(n) for n in range(25)]
        for payload in sent:
            await twilio.media(payload)
        appended: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            while len(appended) < len(sent):
                await model.until("input_audio_buffer.append", after=len(model.received))
                appended = [
                    e["audio"] for e in model.received if e["type"] == "input_audio_buffer.append"
                ]
        assert appended == sent
        replies = [mulaw_frame(100 + n, size=480) for n in range(5)]
        for payload in replies:
            await model.say(
                "response.output_audio.delta", response_id="r1", item_id="i1", delta=payload
            )
        await model.say("response.done", response={"id": "r1", "status": "completed"})
        # 60 ms chunks: a mark once 100 ms are unmarked (after the 2nd and 4th), and one after
        # the response's last audio
        for n, payload in enumerate(replies):
            media = await twilio.next()
            assert media == {
                "event": "media",
                "streamSid": twilio.stream_sid,
                "media": {"payload": payload},
            }
            if n in (1, 3, 4):
                mark = await twilio.next()
                assert mark["event"] == "mark" and mark["streamSid"] == twilio.stream_sid


async def test_model_audio_reaches_the_caller_whatever_its_key_order_and_spacing(
    phone_server, scripted
):
    """The same delta, written as the fast path expects and otherwise: all of it is played."""
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0013", {"caller": CALLER})
        model = await scripted.session()
        await model.until("response.create")
        payloads = [mulaw_frame(n, size=960) for n in range(4)]
        await model.say_text(
            '{"type":"response.output_audio.delta","response_id":"r1","item_id":"i1",'
            f'"delta":"{payloads[0]}"}}'
        )
        await model.say_text(
            '{"event_id":"x","type":"response.output_audio.delta","response_id":"r1",'
            f'"item_id":"i1","delta":"{payloads[1]}"}}'
        )
        await model.say_text(
            '{"type" : "response.output_audio.delta", "response_id": "r1", "item_id": "i1", '
            f'"delta": "{payloads[2]}"}}'
        )
        await model.say_text(
            f'{{\n  "delta": "{payloads[3]}",\n  "item_id": "i1",\n'
            '  "type": "response.output_audio.delta"\n}'
        )
        played = [(await twilio.until("media"))["media"]["payload"] for _ in payloads]
        assert played == payloads


async def test_barge_in_clears_twilio_and_truncates_at_what_was_heard(phone_server, scripted):
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0004", {"caller": CALLER})
        model = await scripted.session()
        await model.until("response.create")
        await model.say("response.created", response={"id": "r1"})
        marks = []
        for n in range(4):  # four chunks of 100 ms (800 bytes of μ-law each)
            delta = mulaw_frame(n, size=800)
            await model.say(
                "response.output_audio.delta", response_id="r1", item_id="i1", delta=delta
            )
            await twilio.until("media")
            marks.append((await twilio.until("mark"))["mark"]["name"])
        await twilio.mark(marks[0])  # the caller has heard 200 ms
        await twilio.mark(marks[1])
        await twilio.media(mulaw_frame(50))  # read after the marks: once it reaches the model,
        await model.until("input_audio_buffer.append")  # the marks have been counted
        await model.say("input_audio_buffer.speech_started", audio_start_ms=900, item_id="u1")
        clear = await twilio.until("clear")
        assert clear == {"event": "clear", "streamSid": twilio.stream_sid}
        truncate = await model.until("conversation.item.truncate")
        assert truncate["item_id"] == "i1" and truncate["content_index"] == 0
        assert truncate["audio_end_ms"] == 200
        # Twilio echoes the dropped chunks' marks after a clear: they change nothing, and the
        # interrupted item's late audio is not played.
        await twilio.mark(marks[2])
        await twilio.mark(marks[3])
        await model.say(
            "response.output_audio.delta", response_id="r1", item_id="i1", delta=mulaw_frame(9)
        )
        await model.say(
            "response.output_audio.delta", response_id="r2", item_id="i2", delta=mulaw_frame(7)
        )
        media = await twilio.until("media")
        assert media["media"]["payload"] == mulaw_frame(7)
        assert model.kinds().count("conversation.item.truncate") == 1


async def test_barge_in_after_everything_was_heard_sends_neither(phone_server, scripted):
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0005", {"caller": CALLER})
        model = await scripted.session()
        await model.until("response.create")
        await model.say(
            "response.output_audio.delta",
            response_id="r1",
            item_id="i1",
            delta=mulaw_frame(1, size=800),  # 100 ms: a mark follows
        )
        await twilio.until("media")
        await twilio.mark((await twilio.until("mark"))["mark"]["name"])
        await twilio.media(mulaw_frame(2))  # the mark is read before this frame
        await model.until("input_audio_buffer.append")
        await model.say("input_audio_buffer.speech_started", audio_start_ms=10, item_id="u1")
        await model.say(
            "response.output_audio.delta", response_id="r2", item_id="i2", delta=mulaw_frame(3)
        )
        assert (await twilio.next())["event"] == "media"  # no clear before it
        assert "conversation.item.truncate" not in model.kinds()


async def test_keypad_digits_reach_the_model_as_text(phone_server, scripted):
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0006", {"caller": CALLER})
        model = await scripted.session()
        await model.until("response.create")
        before = len(model.received)
        for digit in "98207272#":
            await twilio.dtmf(digit)
        item = await model.until("conversation.item.create", after=before)
        text = item["item"]["content"][0]["text"]
        assert "98207272" in text and "keypad" in text
        assert item["item"]["role"] == "user"
        await model.until("response.create", after=before)


async def test_end_call_closes_the_stream_once_the_goodbye_has_played(phone_server, scripted):
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0007", {"caller": CALLER})
        model = await scripted.session()
        await model.until("response.create")
        await model.say("response.created", response={"id": "r1"})
        await model.say(
            "response.function_call_arguments.done",
            response_id="r1",
            call_id="call_end",
            name="end_call",
            arguments='{"reason": "booked"}',
        )
        await model.say("response.done", response={"id": "r1", "status": "completed"})
        output = await model.until("conversation.item.create")
        assert output["item"]["call_id"] == "call_end"
        after_output = model.received.index(output)
        await model.until("response.create", after=after_output)  # the goodbye is asked for
        await model.say("response.created", response={"id": "r2"})
        await model.say(
            "response.output_audio.delta", response_id="r2", item_id="i2", delta=mulaw_frame(4)
        )
        await model.say("response.done", response={"id": "r2", "status": "completed"})
        await twilio.until("media")
        mark = await twilio.until("mark")
        assert twilio.ws.close_code is None  # not before the goodbye is heard
        await twilio.mark(mark["mark"]["name"])
        assert await twilio.closed() == 1000
        await asyncio.wait_for(model.closed.wait(), TIMEOUT)


async def test_transfer_redirects_the_live_call_through_twilios_rest_api(
    settings, database, scripted
):
    async with FakeTwilioRest().running() as rest:
        transferring = settings.model_copy(
            update={
                "openai_base_url": scripted.url,
                "twilio_auth_token": SecretStr(AUTH),
                "twilio_api_base_url": rest.url,
                "transfer_number": "+6561234567",
            }
        )
        async with serve_app(transferring) as live:
            token = mint_stream_token(AUTH, "CA0008", CALLER, 4e9)
            async with twilio_stream(live.ws_url) as twilio:
                await twilio.start("CA0008", {"caller": CALLER, "token": token}, ACCOUNT)
                model = await scripted.session()
                update = await model.until("session.update")
                assert "transfer_call" in {t["name"] for t in update["session"]["tools"]}
                await model.say("response.created", response={"id": "r1"})
                await model.say(
                    "response.function_call_arguments.done",
                    response_id="r1",
                    call_id="call_t",
                    name="transfer_call",
                    arguments="{}",
                )
                await model.say("response.done", response={"id": "r1", "status": "completed"})
                await model.until("conversation.item.create")
                await model.say("response.created", response={"id": "r2"})
                await model.say("response.done", response={"id": "r2", "status": "completed"})
                await asyncio.wait_for(rest.got.wait(), TIMEOUT)
    [request] = rest.requests
    assert request["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/CA0008.json"
    assert "<Dial>+6561234567</Dial>" in request["form"]["Twiml"]
    expected = base64.b64encode(f"{ACCOUNT}:{AUTH}".encode()).decode()
    assert request["authorization"] == f"Basic {expected}"


async def test_stop_ends_the_model_session_and_every_task(phone_server, scripted):
    board = phone_server.app.state.switchboard
    await asyncio.wait_for(board.idle(), TIMEOUT)
    before = asyncio.all_tasks()
    async with twilio_stream(phone_server.ws_url) as twilio:
        await twilio.start("CA0009", {"caller": CALLER})
        model = await scripted.session()
        await model.until("response.create")
        await twilio.stop()
        await asyncio.wait_for(model.closed.wait(), TIMEOUT)
    await asyncio.wait_for(board.idle(), TIMEOUT)
    assert board.active == 0
    left = [task for task in asyncio.all_tasks() - before if _of_a_call(task)]
    assert left == []


def _of_a_call(task: asyncio.Task[Any]) -> bool:
    """A task running code of the call core or a transport (not the app's own background work)."""
    code = getattr(task.get_coro(), "cr_code", None)
    where = code.co_filename if code is not None else ""
    return "/server/call/" in where or "/server/transports/" in where


async def test_a_hundred_phone_calls_at_once(settings, database):
    async with offline_model.OfflineModel(echo=True) as echo:
        many = settings.model_copy(update={"openai_base_url": echo.url, "max_sessions": 200})
        async with serve_app(many) as live:

            async def one(n: int) -> list[str]:
                async with twilio_stream(live.ws_url, f"MZ{n:04d}") as twilio:
                    await twilio.start(f"CA{n:04d}", {"caller": CALLER})
                    sent = [mulaw_frame(n + i) for i in range(5)]
                    for payload in sent:
                        await twilio.media(payload)
                    got: list[str] = []
                    while len(got) < len(sent):
                        got.append((await twilio.until("media"))["media"]["payload"])
                    await twilio.stop()
                    assert got == sent
                    return got

            results: list[Any] = await asyncio.gather(*(one(n) for n in range(100)))
            assert len(results) == 100
            await asyncio.wait_for(live.app.state.switchboard.idle(), 30)
            await asyncio.wait_for(echo.wait_for_sessions(0), 30)
