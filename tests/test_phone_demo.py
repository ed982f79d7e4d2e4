"""`python -m demo --phone`: the playback rules alone, then whole calls against a live
server (a scripted model driven event by event, signed webhooks and stream tokens on)."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from demo import cli as demo
from demo import phone as phone_demo
from demo import phone_audio, twiml
from demo.phone import PhoneOptions
from demo.phone_log import PhoneDemoFailed, PhonePlayer
from tests.conftest import LiveServer, serve_app
from tests.twilio_fakes import ModelSession, ScriptedModel

AUTH = "twilio-auth-token-for-the-demo"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10


# --- the pure part ------------------------------------------------------------------------------


def test_marks_fall_due_when_the_audio_before_them_has_played():
    player = PhonePlayer()
    player.media(800, now=10.0)  # 100 ms
    player.mark("0.1", now=10.0)
    player.media(800, now=10.01)
    player.mark("0.2", now=10.01)
    assert player.next_due() == pytest.approx(10.1)
    assert player.due_marks(10.05) == []
    assert player.due_marks(10.1) == ["0.1"]
    assert not player.idle(10.15)
    assert player.due_marks(10.2) == ["0.2"]
    assert player.idle(10.2)
    player.media(160, now=11.0)  # after a pause, playback starts again from now
    player.mark("0.3", now=11.0)
    assert player.next_due() == pytest.approx(11.02)


def test_clear_drops_the_unplayed_audio_and_releases_its_marks_at_once():
    player = PhonePlayer()
    for n in range(4):
        player.media(800, now=0.0)
        player.mark(f"0.{n}", now=0.0)
    assert player.due_marks(0.25) == ["0.0", "0.1"]
    dropped_ms, marks = player.clear(0.25)
    assert dropped_ms == pytest.approx(150)
    assert marks == ["0.2", "0.3"]
    assert player.idle(0.25) and player.next_due() is None
    assert player.received_ms == 400


def test_twiml_without_a_stream_is_a_failure_that_says_what_the_caller_heard():
    busy = "<Response><Say>Sorry, all our lines are busy.</Say><Hangup/></Response>"
    with pytest.raises(PhoneDemoFailed, match="all our lines are busy"):
        twiml.parse_twiml(busy)
    with pytest.raises(PhoneDemoFailed, match="did not answer TwiML"):
        twiml.parse_twiml("{}")
    url, parameters = twiml.parse_twiml(
        '<Response><Connect><Stream url="ws://h/twilio/media-stream">'
        '<Parameter name="caller" value="+6598207272"/></Stream></Connect></Response>'
    )
    assert (url, parameters) == ("ws://h/twilio/media-stream", {"caller": "+6598207272"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:8000/v1/realtime", "http://127.0.0.1:8000"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("https://book.example.com/", "https://book.example.com"),
    ],
)
def test_http_base(given, expected):
    assert twiml.http_base(given) == expected


def test_phone_alone_chooses_the_phone_line_and_a_number_stays_a_number(monkeypatch):
    assert demo.parse_args(["--phone"]).phone == demo.PHONE_LINE
    assert demo.parse_args(["--phone", "--wav", "a.wav"]).wav == Path("a.wav")
    assert demo.parse_args(["--phone", "91234567"]).phone == "91234567"
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    options = phone_demo.options_from("ws://127.0.0.1:8000/v1/realtime", None, 5.0)
    assert options == PhoneOptions(url="http://127.0.0.1:8000", timeout=5.0, auth_token="secret")


def test_speech_like_audio_and_wav_files_become_20ms_mulaw_frames(tmp_path):
    voice = phone_audio.speech_like(1000)
    assert len(voice) == 8000
    assert len({*voice}) > 50  # voiced, not silence
    path = tmp_path / "caller.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(bytes(2 * 8_000))  # 0.5 s of silence at 16 kHz
    mulaw, seconds = phone_audio.read_wav(path)
    assert seconds == 0.5 and mulaw == b"\xff" * 4000
    frames = list(phone_audio.frames(mulaw + b"\x00"))
    assert len(frames) == 26 and {len(f) for f in frames} == {160}
    assert frames[-1] == b"\x00" + b"\xff" * 159
    # G.711's reference points: 0 -> 0xFF, full scale -> 0x80 / 0x00; the sign is the top bit
    assert phone_audio.encode([0, 32767, -32768]) == bytes([0xFF, 0x80, 0x00])
    positive, negative = phone_audio.encode([1000, -1000])
    assert positive == 0x80 | negative


# --- whole calls against a live server and a scripted model --------------------------------------


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedModel]:
    async with ScriptedModel().running() as model:
        yield model


@pytest.fixture
async def signed_server(settings, database, scripted) -> AsyncIterator[LiveServer]:
    signed = settings.model_copy(
        update={"openai_base_url": scripted.url, "twilio_auth_token": SecretStr(AUTH)}
    )
    async with serve_app(signed) as live:
        yield live


def audio(ms: int, level: int = 0x20) -> str:
    return base64.b64encode(bytes([level]) * (8 * ms)).decode()


async def speak(model: ModelSession, response_id: str, item_id: str, chunks: int) -> None:
    """A response of `chunks` x 100 ms of μ-law audio, sent as fast as the model does."""
    await model.say("response.created", response={"id": response_id})
    for _ in range(chunks):
        await model.say(
            "response.output_audio.delta",
            response_id=response_id,
            item_id=item_id,
            delta=audio(100),
        )
    await model.say("response.done", response={"id": response_id, "status": "completed"})


async def until_speech(model: ModelSession) -> None:
    """Until an append carries something other than μ-law silence: the caller speaks."""
    seen = 0
    while True:
        await model.until("input_audio_buffer.append", after=seen)
        appends = model.received[seen:]
        seen += len(appends)
        for event in appends:
            if event.get("type") == "input_audio_buffer.append":
                if set(base64.b64decode(event["audio"])) != {phone_audio.SILENCE}:
                    return


async def run_demo(
    live: LiveServer, **options: Any
) -> tuple[asyncio.Task[int], list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    opts = PhoneOptions(url=live.url, timeout=TIMEOUT, auth_token=AUTH, **options)
    task = asyncio.create_task(phone_demo.run_phone_demo(opts, out.append, err.append))
    return task, out, err


async def greeting_then_barge_in(scripted: ScriptedModel) -> tuple[ModelSession, dict[str, Any]]:
    model = await scripted.session()
    update = await model.until("session.update")
    assert update["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    await model.until("response.create")
    await speak(model, "r1", "greeting", 10)  # a 1 s greeting
    await until_speech(model)
    await model.say("input_audio_buffer.speech_started", audio_start_ms=300, item_id="u1")
    truncate = await model.until("conversation.item.truncate")
    await model.say("input_audio_buffer.speech_stopped", audio_end_ms=1500, item_id="u1")
    await speak(model, "r2", "reply1", 3)  # 300 ms: "sorry, I didn't catch that"
    return model, truncate


def number(lines: list[str], prefix: str) -> float:
    line = next(line for line in lines if line.startswith(prefix))
    return float(line[len(prefix) :].split()[0])


async def test_the_caller_is_greeted_barges_in_types_digits_and_hangs_up(signed_server, scripted):
    task, out, err = await run_demo(signed_server, caller="+6591112222", digits="98207272#")
    model, truncate = await greeting_then_barge_in(scripted)
    assert "+6591112222" in model.received[0]["session"]["instructions"]  # the signed caller
    keypad = await model.until("conversation.item.create")
    assert "98207272" in keypad["item"]["content"][0]["text"]
    await model.until("response.create", after=model.received.index(keypad))
    await speak(model, "r3", "reply2", 5)
    await asyncio.wait_for(model.closed.wait(), TIMEOUT)  # the demo's stop ends the session
    code = await asyncio.wait_for(task, TIMEOUT)
    assert code == 0, "\n".join(out + err)
    assert err == []
    assert out[0].startswith(f"ringing {signed_server.url}/twilio/voice (signed) from +6591112222")
    assert any(line.startswith("host ▸ greeting: first media") for line in out)
    assert "host ▸ greeting: 1000 ms of audio received in all" in out
    heard = number(out, "  barge-in        clear ")  # ms after speaking began
    assert heard >= 0
    clear_line = next(line for line in out if line.startswith("✂ clear"))
    heard_ms = float(clear_line.split("you heard ")[1].split()[0])
    # the server truncates at what the acknowledged marks say was played: never more than the
    # caller heard, and the demo only acknowledges what has played
    assert 0 < truncate["audio_end_ms"] <= heard_ms + 1 < 1000
    assert truncate["item_id"] == "greeting"
    assert "host ▸ replied to your speech: 300 ms of audio" in out
    assert any(line.startswith("host ▸ answered the keypad: 500 ms of audio") for line in out)
    assert "☎ you hung up (stop)" in out
    assert out[-1] == "phone demo passed: greeting, barge-in cleared, keypad answered, call ended"


async def test_the_host_ending_the_call_closes_the_stream_after_the_goodbye(
    signed_server, scripted
):
    task, out, err = await run_demo(signed_server, digits="1#")
    model, _ = await greeting_then_barge_in(scripted)
    keypad = await model.until("conversation.item.create")
    await model.until("response.create", after=model.received.index(keypad))
    await model.say("response.created", response={"id": "r3"})
    await model.say(
        "response.function_call_arguments.done",
        response_id="r3",
        call_id="call_end",
        name="end_call",
        arguments='{"reason": "caller is done"}',
    )
    await model.say("response.done", response={"id": "r3", "status": "completed"})
    output = await model.until("conversation.item.create", after=model.received.index(keypad) + 1)
    assert output["item"]["call_id"] == "call_end"
    await model.until("response.create", after=model.received.index(output))  # the goodbye
    await speak(model, "r4", "goodbye", 4)
    code = await asyncio.wait_for(task, TIMEOUT)
    assert code == 0, "\n".join(out + err)
    assert "☎ the host ended the call (stream closed, code 1000)" in out
    assert "☎ you hung up (stop)" not in out
    assert any(line.startswith("host ▸ answered the keypad: 400 ms of audio") for line in out)


async def test_a_forged_signature_is_refused_and_reported(signed_server, scripted):
    err: list[str] = []
    options = PhoneOptions(url=signed_server.url, timeout=TIMEOUT, auth_token="not-the-token")
    assert await phone_demo.run_phone_demo(options, lambda _: None, err.append) == 1
    assert err[0].startswith("phone demo failed: the voice webhook answered 403")
    assert scripted.sessions == []


async def test_a_server_that_never_greets_fails_on_time(signed_server, scripted):
    out: list[str] = []
    err: list[str] = []
    options = PhoneOptions(url=signed_server.url, timeout=0.5, auth_token=AUTH)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await phone_demo.run_phone_demo(options, out.append, err.append) == 1
    assert loop.time() - started < 5
    assert err == ["phone demo failed: nothing within 0.5 s while waiting for the greeting"]
    assert "  greeting        none" in out


# --- against the offline model ------------------------------------------------------------------


def summary(lines: list[str], key: str) -> str:
    return next(line for line in lines if line.startswith(f"  {key}"))[len(f"  {key}") :].strip()


async def test_demo_against_the_offline_model(live_server):
    """The offline model speaks μ-law: its VAD hears the caller over the greeting."""
    out: list[str] = []
    err: list[str] = []
    options = PhoneOptions(url=live_server.url, timeout=20)
    code = await phone_demo.run_phone_demo(options, out.append, err.append)
    assert code == 0, "\n".join(out + err)
    greeting = summary(out, "greeting")  # "first media 290 ms after start, 1020 ms of audio"
    greeting_ms = float(greeting.split(", ")[1].split()[0])
    clear_line = next(line for line in out if line.startswith("✂ clear"))
    heard_ms = float(clear_line.split("you heard ")[1].split()[0])
    assert 0 < heard_ms < greeting_ms  # cut off mid-greeting
    assert summary(out, "ended") == "you hung up (stop)"
    keypad = summary(out, "keypad reply")
    assert keypad.endswith("ms of audio") and float(keypad.split()[0]) > 0
    assert out[-1] == "phone demo passed: greeting, barge-in cleared, keypad answered, call ended"
    board = live_server.app.state.switchboard
    await asyncio.wait_for(board.idle(), TIMEOUT)  # the call, and its model session, are over


async def test_cli_plays_a_wav_file_as_the_callers_speech(live_server):
    wav = PROJECT_ROOT / "tests" / "data" / "speech" / "lookup-f2-150.wav"  # 16 kHz speech
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--phone",
        "--wav",
        str(wav),
        "--url",
        live_server.url,
        "--timeout",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env={k: v for k, v in os.environ.items() if k != "TWILIO_AUTH_TOKEN"},
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    out = stdout.decode().splitlines()
    assert process.returncode == 0, stdout.decode() + stderr.decode()
    assert "you  ≋ speaking over the greeting: lookup-f2-150.wav, 2.15 s as 8 kHz μ-law" in out
    assert any(line.startswith("✂ clear") for line in out)
    assert float(summary(out, "speech reply").split()[0]) > 0  # the host answered the speech
