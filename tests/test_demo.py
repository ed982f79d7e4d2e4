"""`python -m demo`: its pure verdict logic, its audio helpers, and whole calls against the
live server (offline model, throwaway database)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import math
import random
import re
import sys
import wave
from array import array
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest

from demo import cli, microphone, page, steps
from demo.call_log import CallLog
from demo.page import Options
from offline_model.conversation import NOT_HEARD
from offline_model.intents import parse
from protocol import realtime as p

BOOKING = steps.script("Ada Lovelace", "+65 9123 4567")[0]
LOOKUP = steps.script("Ada Lovelace", "+65 9123 4567")[1]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESERVATION = {
    "phone_number": "+6591234567",
    "name": "Ada Lovelace",
    "reservation_date": "2026-11-26",
    "reservation_time": "19:00",
    "party_size": 4,
    "other_info": {},
    "confirmation_number": "ABC234",
}


def ev(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}


def done(status: str = "completed", *output_types: str, **details: Any) -> dict[str, Any]:
    response = {
        "id": "resp_1",
        "status": status,
        "output": [{"type": kind} for kind in output_types],
        "status_details": details or None,
    }
    return ev(p.RESPONSE_DONE, response=response)


def feed_all(log: CallLog, *events: dict[str, Any], now: float = 0.0) -> list[str]:
    return [line for event in events for line in log.feed(event, now)]


def booking_turn(code: str = "ABC234") -> list[dict[str, Any]]:
    """What the relay sends for one typed booking turn: a tool call, then the spoken answer."""
    return [
        ev(p.RESPONSE_CREATED, response={"id": "resp_1"}),
        ev(p.FUNCTION_ARGS_DONE, name="make_reservation", call_id="c1", arguments="{}"),
        done("completed", "function_call"),
        ev(p.SESSION_STATS, reply_latency_ms={"count": 0}),
        ev(
            p.RESERVATION_CONFIRMED,
            reservation={**RESERVATION, "confirmation_number": code},
            confirmation_number=code,
            repeated=False,
        ),
        ev(p.RESPONSE_CREATED, response={"id": "resp_2"}),
        ev(p.OUTPUT_AUDIO_DELTA, delta="AAAA"),
        ev(p.OUTPUT_TRANSCRIPT_DONE, transcript="You're booked, Ada."),
        done("completed", "message"),
    ]


# --- the pure part ------------------------------------------------------------------------------


def test_a_booking_turn_ends_only_after_the_spoken_reply():
    log = CallLog()
    log.user_turn(BOOKING.text, now=10.0)
    events = booking_turn()
    for index, event in enumerate(events):
        log.feed(event, 10.5)
        # the tool-call response's done is not the end: the reply follows the tool's output
        assert log.turn_over is (index == len(events) - 1), event["type"]
    assert log.satisfied(BOOKING) and not log.satisfied(LOOKUP)
    assert log.confirmation == "ABC234" and log.failure is None
    assert log.first_audio_ms == [500.0]
    assert not log.succeeded  # not found again yet


def test_printed_lines_for_a_booking_turn():
    log = CallLog()
    lines = log.user_turn("hello", 0.0) + feed_all(log, *booking_turn())
    assert lines == [
        "you   › hello",
        "  ⚙ make_reservation({})",
        "✓ reservation.confirmed  ABC234  Ada Lovelace  2026-11-26 19:00  party of 4",
        "agent › You're booked, Ada.",
    ]


def test_booked_then_found_with_the_same_number_succeeds():
    log = CallLog()
    feed_all(log, *booking_turn())
    log.user_turn(LOOKUP.text, 0.0)
    assert not log.turn_over  # a new turn starts open
    lines = feed_all(
        log,
        ev(p.RESERVATION_FOUND, reservation=RESERVATION, confirmation_number="ABC234"),
        done("completed", "message"),
    )
    assert lines == ["✓ reservation.found      ABC234  Ada Lovelace  2026-11-26 19:00  party of 4"]
    assert log.satisfied(LOOKUP) and log.turn_over and log.succeeded


def test_found_with_another_number_is_a_mismatch():
    log = CallLog()
    feed_all(log, *booking_turn("ABC234"))
    [line] = log.feed(
        ev(p.RESERVATION_FOUND, reservation=RESERVATION, confirmation_number="XYZ789"), 0.0
    )
    assert line.startswith("✗ reservation.found")
    assert log.failure == "confirmation numbers differ: booked ABC234, the lookup found XYZ789"
    assert not log.succeeded


@pytest.mark.parametrize(
    ("event", "line", "failure"),
    [
        (
            ev(p.RESERVATION_FAILED, reason="reservation_exists", message="Already booked."),
            "✗ reservation.failed  reservation_exists: Already booked.",
            "the reservation failed (reservation_exists): Already booked.",
        ),
        (
            ev(p.RESERVATION_NOT_FOUND, message="No such booking."),
            "✗ reservation.not_found  No such booking.",
            "the lookup found no reservation: No such booking.",
        ),
        (
            p.error_event("model_disconnected", "Model lost."),
            "✗ error  model_disconnected: Model lost.",
            "the server sent an error: model_disconnected: Model lost.",
        ),
        (
            done("failed", error={"message": "boom"}),
            '✗ response failed  {"error":{"message":"boom"}}',
            'the model\'s response failed: {"error":{"message":"boom"}}',
        ),
    ],
)
def test_events_that_make_success_impossible(event, line, failure):
    log = CallLog()
    assert log.feed(event, 0.0) == [line]
    assert log.failure == failure
    # the first failure is the one reported
    log.feed(p.error_event("later", "Something else."), 0.0)
    assert log.failure == failure


def test_a_closed_socket_fails_with_its_code_and_reason():
    log = CallLog()
    assert log.closed(1011, "model disconnected") == [
        "✗ connection closed  (code 1011: model disconnected)"
    ]
    assert log.failure == "the server closed the connection (code 1011: model disconnected)"
    assert CallLog().closed(None, "") == ["✗ connection closed  (no close frame)"]


def test_a_cancelled_response_ends_the_turn_even_with_a_tool_call():
    log = CallLog()
    log.user_turn("hi", 0.0)
    lines = feed_all(
        log,
        ev(p.RESPONSE_CREATED, response={}),
        done("cancelled", "function_call", type="cancelled", reason="turn_detected"),
    )
    assert lines == ["· response cancelled  (turn_detected)"]
    assert log.turn_over and log.failure is None


def test_vad_events_are_printed_and_hold_the_turn_open_while_speaking():
    log = CallLog()
    log.audio_turn("[streaming tone.wav]")
    assert log.feed(ev(p.SPEECH_STARTED, audio_start_ms=0, item_id="i"), 1.0) == [
        "  ◉ speech started  at 0.00 s of input audio"
    ]
    assert log.feed(ev(p.SPEECH_STOPPED, audio_end_ms=1040, item_id="i"), 2.0) == [
        "  ○ speech stopped  at 1.04 s of input audio"
    ]
    audio = ev(p.OUTPUT_AUDIO_DELTA, delta="AAAA")
    feed_all(log, ev(p.RESPONSE_CREATED, response={}), audio, now=2.25)
    log.feed(done(), 2.5)
    assert log.turn_over
    assert log.first_audio_ms == [250.0]  # measured from speech_stopped
    log.feed(ev(p.SPEECH_STARTED, audio_start_ms=3000, item_id="j"), 3.0)
    assert not log.turn_over  # the caller speaks again: a new turn is coming


def test_session_events_ready_and_unknown_events_are_quiet():
    log = CallLog()
    session = {
        "id": "sess_1",
        "model": "gpt-realtime",
        "audio": {
            "input": {"turn_detection": {"type": "server_vad"}},
            "output": {"voice": "marin"},
        },
        "tools": [{}, {}, {}],
    }
    assert log.feed(ev(p.SESSION_CREATED, session=session), 0) == [
        "· session.created  sess_1  model gpt-realtime"
    ]
    assert not log.ready
    assert log.feed(ev(p.SESSION_UPDATED, session=session), 0) == [
        "· session.updated  voice marin, turn detection server_vad, 3 tools"
    ]
    assert log.ready
    assert feed_all(log, ev("rate_limits.updated"), ev(p.ITEM_ADDED), {"no": "type"}) == []


def test_stats_are_fresh_only_after_the_last_response_done():
    log = CallLog()
    log.feed(ev(p.SESSION_STATS), 0)
    assert log.stats_fresh
    log.feed(done(), 0)
    assert not log.stats_fresh
    log.feed(ev(p.SESSION_STATS), 0)
    assert log.stats_fresh


def test_summary_of_session_stats():
    log = CallLog()
    log.first_audio_ms = [412.3, 95.0]
    log.feed(ev(p.OUTPUT_AUDIO_DELTA, delta=base64.b64encode(bytes(24_000)).decode()), 0)
    log.feed(
        ev(
            p.SESSION_STATS,
            reply_latency_ms={"count": 2, "last": 120.5, "p50": 110.0, "max": 120.5},
            tool_calls=[
                {"name": "make_reservation", "duration_ms": 12.5, "ok": True},
                {"name": "lookup_reservation", "duration_ms": 3.25, "ok": False},
            ],
            usage={
                "total_tokens": 300,
                "input_tokens": 200,
                "output_tokens": 100,
                "output_audio_tokens": 80,
            },
            responses=4,
            audio_frames_in=75,
            audio_frames_out=30,
        ),
        0,
    )
    assert log.summary() == [
        "── session.stats ──",
        "  reply latency   last 120.5 ms, p50 110.0 ms, max 120.5 ms  (2 spoken turns)",
        "  tool calls      make_reservation 12.5 ms, lookup_reservation 3.25 ms (failed)",
        "  tokens          300 total (input 200, output 100); audio: output 80",
        "  responses       4, audio frames in 75 / out 30",
        "  agent audio     0.50 s received",
        "  first reply     412 ms, 95 ms  (seen by this client, per turn)",
    ]
    assert CallLog().summary() == ["── session.stats ──", "  (no session.stats received)"]


def test_the_script_reads_right_to_the_offline_parser():
    """The typed lines must carry every slot, or the offline model would ask back."""
    booking, lookup = steps.script("Grace Hopper", "+65 9876 5432")
    today = dt.date(2026, 11, 25)
    parsed = parse(booking.text, today)
    assert (parsed.intent, parsed.name, parsed.phone) == ("book", "Grace Hopper", "+6598765432")
    assert (parsed.date, parsed.time, parsed.party_size) == ("2026-11-26", "19:00", 4)
    parsed = parse(lookup.text, today)
    assert (parsed.intent, parsed.name, parsed.phone) == ("lookup", "Grace Hopper", "+6598765432")
    assert (booking.expect, lookup.expect) == (p.RESERVATION_CONFIRMED, p.RESERVATION_FOUND)


def test_random_phones_are_valid_singapore_mobiles():
    rng = random.Random(7)
    phones = {steps.random_sg_mobile(rng) for _ in range(50)}
    assert len(phones) == 50
    for phone in phones:
        assert re.fullmatch(r"\+65 9\d{3} \d{4}", phone)
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ws://127.0.0.1:8000/v1/realtime", "ws://127.0.0.1:8000/v1/realtime"),
        ("ws://127.0.0.1:8000", "ws://127.0.0.1:8000/v1/realtime"),
        ("http://localhost:9000/", "ws://localhost:9000/v1/realtime"),
        ("https://example.com", "wss://example.com/v1/realtime"),
        ("127.0.0.1:8000", "ws://127.0.0.1:8000/v1/realtime"),
    ],
)
def test_realtime_url(given, expected):
    assert steps.realtime_url(given) == expected


def test_parse_args_defaults_and_options():
    options = cli.parse_args([])
    assert options == Options(steps.DEFAULT_URL, "Ada Lovelace", "", None, 30.0)
    args = ["--url", "ws://h:1", "--name", "Grace", "--phone", "91234567", "--wav", "a.wav"]
    options = cli.parse_args([*args, "--timeout", "5"])
    assert options == Options("ws://h:1", "Grace", "91234567", Path("a.wav"), 5.0)


# --- audio helpers ------------------------------------------------------------------------------


def test_resample_linear_interpolates_and_keeps_duration():
    assert list(microphone.resample_linear([0, 100, 200], 24_000, 24_000)) == [0, 100, 200]
    up = microphone.resample_linear([0, 300, -300], 8_000, 24_000)
    assert list(up) == [0, 100, 200, 300, 100, -100, -300, -300, -300]
    down = microphone.resample_linear(list(range(0, 4800, 10)), 48_000, 24_000)
    assert len(down) == 240 and list(down[:3]) == [0, 20, 40]
    extreme = microphone.resample_linear([32767, -32768] * 50, 16_000, 24_000)
    assert min(extreme) >= -32768 and max(extreme) <= 32767
    assert len(microphone.resample_linear([1] * 16_000, 16_000, 24_000)) == 24_000


def write_wav(path: Path, rate: int, tone_s: float, silence_s: float, channels: int = 1) -> Path:
    """A loud 440 Hz tone then silence, the way a short spoken phrase looks to a VAD."""
    tone = [
        round(12_000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(tone_s * rate))
    ]
    samples = array("h", tone + [0] * int(silence_s * rate))
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes() * channels)
    return path


def test_read_wav_resamples_to_24k_and_frames_are_20ms(tmp_path):
    path = write_wav(tmp_path / "demo_tone.wav", 16_000, 0.5, 1.0)
    pcm, rate, seconds = microphone.read_wav(path)
    assert (rate, seconds) == (16_000, 1.5)
    assert len(pcm) == 36_000 * 2  # 1.5 s at 24 kHz, 2 bytes a sample
    chunks = list(microphone.frames(pcm + b"\x01\x00"))
    assert len(chunks) == 76 and {len(c) for c in chunks} == {microphone.FRAME_BYTES}
    assert chunks[-1] == b"\x01\x00" + bytes(microphone.FRAME_BYTES - 2)


def test_read_wav_refuses_stereo_and_non_wav(tmp_path):
    with pytest.raises(steps.DemoFailed, match="2-channel 16-bit audio"):
        microphone.read_wav(write_wav(tmp_path / "demo_stereo.wav", 24_000, 0.1, 0.1, channels=2))
    (tmp_path / "demo_junk.wav").write_bytes(b"not a wav file")
    with pytest.raises(steps.DemoFailed, match="cannot read"):
        microphone.read_wav(tmp_path / "demo_junk.wav")


async def test_a_bad_wav_fails_before_connecting(tmp_path):
    err: list[str] = []
    options = Options(url="ws://127.0.0.1:9", phone="+65 9123 4567", wav=tmp_path / "none.wav")
    assert await page.run_demo(options, lambda _: None, err.append) == 1
    assert len(err) == 1 and err[0].startswith("demo failed: cannot read ")


# --- whole calls against the live server --------------------------------------------------------


def unique_phone() -> tuple[str, str]:
    """(as typed, E.164): every live test books under its own number."""
    typed = steps.random_sg_mobile()
    return typed, "+65" + typed[4:].replace(" ", "")


async def run(live_server, **options: Any) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    url = live_server.ws_url + "/v1/realtime"
    code = await page.run_demo(Options(url=url, timeout=20, **options), out.append, err.append)
    return code, out, err


def confirmations(lines: list[str], event: str) -> list[str]:
    return [line.split()[2] for line in lines if line.startswith(f"✓ {event}")]


async def test_demo_books_and_finds_the_same_confirmation(live_server, pool):
    typed, e164 = unique_phone()
    code, out, err = await run(live_server, name="Ada Lovelace", phone=typed)
    assert code == 0, "\n".join(out + err)
    assert err == []
    row = await pool.fetchrow(
        "SELECT name, party_size, reservation_time, confirmation_number FROM reservations "
        "WHERE phone_number = $1",
        e164,
    )
    assert row is not None
    assert (row["name"], row["party_size"], row["reservation_time"]) == (
        "Ada Lovelace",
        4,
        dt.time(19, 0),
    )
    assert confirmations(out, p.RESERVATION_CONFIRMED) == [row["confirmation_number"]]
    assert confirmations(out, p.RESERVATION_FOUND) == [row["confirmation_number"]]
    assert out[-1] == (
        f"demo passed: booked {row['confirmation_number']} and found it again with the same number"
    )
    assert f"you   › {steps.script('Ada Lovelace', typed)[0].text}" in out
    assert any(line.startswith("agent › You're booked") for line in out)
    # The text the guest would get (the shared test server has no Twilio settings).
    text = out[-2]
    assert text.startswith("text to the guest [skipped_not_configured - not sent")
    assert "you're booked for 4 guests" in text and row["confirmation_number"] in text
    tools_line = next(line for line in out if line.startswith("  tool calls"))
    assert "make_reservation" in tools_line and "lookup_reservation" in tools_line
    assert any(line.startswith("  tokens          ") and "total" in line for line in out)


async def test_a_repeat_demo_with_the_same_details_still_passes(live_server, pool):
    typed, _ = unique_phone()
    first, out1, _ = await run(live_server, phone=typed)
    second, out2, err = await run(live_server, phone=typed)
    assert (first, second) == (0, 0), "\n".join(out2 + err)
    assert confirmations(out1, p.RESERVATION_CONFIRMED) == confirmations(out2, p.RESERVATION_FOUND)
    assert any("already held" in line for line in out2)


async def test_cli_exits_1_when_the_phone_already_holds_another_booking(live_server, pool):
    typed, e164 = unique_phone()
    day_after = (live_server.settings.today() + dt.timedelta(days=2)).isoformat()
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        response = await http.post(
            "/api/reservations",
            json={
                "phone_number": e164,
                "name": "Grace Hopper",
                "reservation_date": day_after,
                "reservation_time": "18:00",
                "party_size": 2,
            },
        )
    assert response.status_code == 201, response.text
    held = response.json()["confirmation_number"]

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--url",
        live_server.ws_url,  # the path is added by the demo
        "--phone",
        typed,
        "--timeout",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 1, out + err
    assert "✗ reservation.failed  reservation_exists" in out
    assert err.startswith("demo failed: the reservation failed (reservation_exists): ")
    assert "already has a reservation" in err
    assert "── session.stats ──" in out  # the figures are shown on failure too
    row = await pool.fetchrow("SELECT * FROM reservations WHERE phone_number = $1", e164)
    assert (row["name"], row["confirmation_number"]) == ("Grace Hopper", held)  # untouched


async def test_wav_turn_prints_vad_events_then_the_script_succeeds(live_server, pool, tmp_path):
    wav = write_wav(tmp_path / "demo_tone.wav", 16_000, tone_s=0.5, silence_s=1.0)
    typed, e164 = unique_phone()
    loop = asyncio.get_running_loop()
    started = loop.time()
    code, out, err = await run(live_server, phone=typed, wav=wav)
    assert code == 0, "\n".join(out + err)
    assert loop.time() - started >= 1.5  # streamed in real time, not in a burst
    started_at = next(i for i, line in enumerate(out) if "◉ speech started" in line)
    stopped_at = next(i for i, line in enumerate(out) if "○ speech stopped" in line)
    first_typed = next(i for i, line in enumerate(out) if line.startswith("you   ›"))
    assert started_at < stopped_at < first_typed
    assert "resampled 16000 → 24000 Hz" in out[started_at - 1]
    reply = next(line for line in out[stopped_at:first_typed] if line.startswith("agent ›"))
    assert NOT_HEARD in reply  # a tone holds no words: the offline model asks to say it again
    code_in_db = await pool.fetchval(
        "SELECT confirmation_number FROM reservations WHERE phone_number = $1", e164
    )
    assert confirmations(out, p.RESERVATION_FOUND) == [code_in_db]
    assert "(1 spoken turn)" in next(line for line in out if line.startswith("  reply latency"))


async def test_a_silent_wav_detects_no_speech_and_the_script_still_succeeds(
    live_server, pool, tmp_path
):
    wav = write_wav(tmp_path / "demo_silence.wav", 24_000, tone_s=0, silence_s=0.4)
    typed, _ = unique_phone()
    code, out, err = await run(live_server, phone=typed, wav=wav)
    assert code == 0, "\n".join(out + err)
    assert "you   ≋ [streaming demo_silence.wav: 0.40 s]" in out
    assert "  (no speech detected in the audio)" in out
    assert not any("speech started" in line for line in out)


async def test_unreachable_server_fails_fast_with_a_clear_message():
    out: list[str] = []
    err: list[str] = []
    options = Options(url="ws://127.0.0.1:9/v1/realtime", phone="+65 9123 4567", timeout=5)
    assert await page.run_demo(options, out.append, err.append) == 1
    assert err[0].startswith("demo failed: could not connect to ws://127.0.0.1:9/v1/realtime")


async def test_a_silent_server_times_out():
    """A server that accepts the socket but never speaks: the first wait gives up on time."""
    import websockets.asyncio.server as ws_server

    async def silent(connection):
        await connection.wait_closed()

    async with ws_server.serve(silent, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        out: list[str] = []
        err: list[str] = []
        options = Options(url=f"ws://127.0.0.1:{port}", phone="+65 9123 4567", timeout=0.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await page.run_demo(options, out.append, err.append) == 1
        assert loop.time() - started < 3
    assert err == ["demo failed: no answer within 0.5 s while waiting for the session to start"]


async def test_a_server_that_closes_mid_call_fails_with_the_close_reason():
    import websockets.asyncio.server as ws_server

    async def closing(connection):
        await connection.send('{"type":"session.updated","session":{}}')
        await connection.recv()  # the booking's conversation.item.create
        await connection.close(1011, "model disconnected")

    async with ws_server.serve(closing, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        err: list[str] = []
        options = Options(url=f"ws://127.0.0.1:{port}", phone="+65 9123 4567", timeout=5)
        assert await page.run_demo(options, lambda _: None, err.append) == 1
    assert err == ["demo failed: the server closed the connection (code 1011: model disconnected)"]
