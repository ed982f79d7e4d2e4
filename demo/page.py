"""A scripted phone call against a running server: book a table, then look it up again.

``python -m demo`` (or ``make demo``) is the quickest end-to-end check that the page's
path works: WebSocket relay, model (the OpenAI Realtime API or the offline one), tool calls and
PostgreSQL. It speaks to ``/v1/realtime`` exactly as the browser page does -- typed turns as user
messages plus ``response.create``, audio as 20 ms ``input_audio_buffer.append`` frames -- and
prints the call as it happens. It exits 0 only when the booking was confirmed *and* a lookup
with the same phone and name returned the same confirmation number, so it can gate a deploy.

The module has two halves. ``CallLog`` is pure: fed server events, it returns the lines to print
and keeps the verdict (booked, found, failed and why), so every rule is unit-testable without a
socket. ``DemoCall`` is the I/O: one reader task feeding ``CallLog``, and the script sending
turns and waiting -- each wait bounded by ``asyncio.timeout`` -- for ``CallLog`` to say the
turn is over.

    python -m demo [--url ws://127.0.0.1:8000/v1/realtime] [--name NAME]
                          [--phone PHONE] [--wav FILE] [--timeout 30]
    python -m demo --sip [--name NAME] [--phone PHONE]   # a SIP call, see demo/sip.py

``--phone`` alone (no number after it) calls as a phone over Twilio's protocol instead:
``demo.phone``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import random
import sys
import wave
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from demo.texts import guest_text
from protocol import realtime as p

DEFAULT_URL = "ws://127.0.0.1:8000/v1/realtime"
REALTIME_PATH = "/v1/realtime"
DEFAULT_NAME = "Ada Lovelace"
DEFAULT_TIMEOUT_S = 30.0
PHONE_LINE = "<phone line>"  # `--phone` with no number: the Twilio caller of demo.phone

FRAME_MS = 20  # what a browser's audio worklet sends; small frames let VAD react sooner
FRAME_BYTES = FRAME_MS * p.PCM16_BYTES_PER_MS
TRAILING_SILENCE_MS = 800  # a real microphone keeps going after the file: lets VAD end the turn
MAX_NUDGES = 2  # a real model reads details back and asks "shall I book it?" before booking
STATS_GRACE_S = 2.0  # session.stats follows response.done at once; don't hang if it doesn't

Write = Callable[[str], None]


class DemoFailed(Exception):
    """The script cannot succeed; the message says why, in words for the person running it."""


# --- the script -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One typed turn, the page event that proves it worked, and what to say if asked back."""

    name: str
    text: str
    expect: str
    nudge: str


def script(name: str, phone: str) -> list[Step]:
    """Booking then lookup, phrased so both the offline parser and a real model understand."""
    return [
        Step(
            "booking",
            f"I'd like to book a table for 4 tomorrow at 7pm. "
            f"My name is {name} and my phone is {phone}.",
            p.RESERVATION_CONFIRMED,
            "Yes, that's all correct, please go ahead and book it.",
        ),
        Step(
            "lookup",
            f"Can you look up my reservation? My phone is {phone} and my name is {name}.",
            p.RESERVATION_FOUND,
            "Yes, please look up that reservation now.",
        ),
    ]


def random_sg_mobile(rng: random.Random | None = None) -> str:
    """A valid Singapore mobile (+65 9xxx xxxx): repeated demos must not share a phone number,
    since each number may hold only one upcoming booking."""
    import phonenumbers  # a server dependency; imported here so the pure part needs nothing

    rng = rng or random.Random()
    for _ in range(100):  # about 90 % of 9xxxxxxx numbers are valid
        digits = f"9{rng.randrange(10**7):07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse("+65" + digits)):
            return f"+65 {digits[:4]} {digits[4:]}"
    raise RuntimeError("could not draw a valid Singapore mobile number")


def realtime_url(url: str) -> str:
    """Accept ``ws://host:port``, ``http://host:port`` or the full endpoint URL."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else REALTIME_PATH
    return urlunsplit(parts._replace(scheme=scheme, path=path))


# --- the pure part: events in, lines and a verdict out ------------------------------------------


def describe(reservation: Any) -> str:
    """``Ada Lovelace  2026-11-26 19:00  party of 4`` from a reservation's JSON."""
    if not isinstance(reservation, dict):
        return ""
    return (
        f"{reservation.get('name')}  {reservation.get('reservation_date')} "
        f"{reservation.get('reservation_time')}  party of {reservation.get('party_size')}"
    )


def _has_function_call(response: dict[str, Any]) -> bool:
    output = response.get("output")
    return isinstance(output, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call" for item in output
    )


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: events come from the network."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _error_text(event: dict[str, Any]) -> str:
    error = _obj(event.get("error"))
    code = error.get("code") or error.get("type") or "error"
    return f"{code}: {error.get('message') or 'no message'}"


@dataclass
class CallLog:
    """What the demo concludes from server events. Pure: no I/O, no clock (times are passed in).

    A turn is over when a response that called no tool is done and none is in progress (a
    response that calls a tool is followed by the relay's own ``response.create`` once the tool
    has answered), and the caller is not speaking. ``failure`` is set by the first event that
    makes success impossible; the I/O loop stops at once when it is set.
    """

    failure: str | None = None
    confirmation: str | None = None  # from reservation.confirmed
    found: str | None = None  # from reservation.found
    stats: dict[str, Any] | None = None  # the latest session.stats
    ready: bool = False  # session.updated seen: the server's configuration is in force
    speech_started: int = 0
    speech_stopped: int = 0
    first_audio_ms: list[float] = field(default_factory=list)  # turn end -> first reply audio
    audio_out_bytes: int = 0
    _in_progress: int = 0
    _final_done: bool = False
    _stats_fresh: bool = False
    _turn_ended_at: float | None = None
    _seen: set[str] = field(default_factory=set)  # custom event types of the current turn

    # -- what the I/O loop asks --------------------------------------------------------------

    @property
    def turn_over(self) -> bool:
        speaking = self.speech_started > self.speech_stopped
        return self._final_done and self._in_progress == 0 and not speaking

    @property
    def stats_fresh(self) -> bool:
        """A session.stats arrived after the last response.done: the figures are final."""
        return self._stats_fresh

    @property
    def succeeded(self) -> bool:
        return (
            self.failure is None
            and self.confirmation is not None
            and (self.found == self.confirmation)
        )

    def satisfied(self, step: Step) -> bool:
        """Whether this turn produced the event the step expects."""
        return step.expect in self._seen

    # -- what the I/O loop tells it ----------------------------------------------------------

    def user_turn(self, text: str, now: float) -> list[str]:
        """A typed turn is about to be sent: a new turn starts."""
        self._new_turn(now)
        return [f"you   › {text}"]

    def audio_turn(self, label: str) -> list[str]:
        """Audio is about to stream; the turn ends when VAD hears the speech stop."""
        self._new_turn(None)
        return [f"you   ≋ {label}"]

    def fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message

    def closed(self, code: int | None, reason: str) -> list[str]:
        """The socket is closed (we did not close it): nothing more can happen."""
        what = f"code {code}" if code is not None else "no close frame"
        if reason:
            what += f": {reason}"
        self.fail(f"the server closed the connection ({what})")
        return [f"✗ connection closed  ({what})"]

    def feed(self, event: dict[str, Any], now: float) -> list[str]:
        """One server event: update the verdict and return what to print (maybe nothing)."""
        kind = event.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        return handler(self, event, now) if handler else []

    # -- handlers ----------------------------------------------------------------------------

    def _new_turn(self, now: float | None) -> None:
        self._final_done = False
        self._seen = set()
        self._turn_ended_at = now

    def _session_created(self, event: dict[str, Any], now: float) -> list[str]:
        session = _obj(event.get("session"))
        return [f"· session.created  {session.get('id', '?')}  model {session.get('model', '?')}"]

    def _session_updated(self, event: dict[str, Any], now: float) -> list[str]:
        self.ready = True
        session = _obj(event.get("session"))
        audio = _obj(session.get("audio"))
        audio_in = _obj(audio.get("input"))
        audio_out = _obj(audio.get("output"))
        turn = audio_in.get("turn_detection")
        vad = turn.get("type") if isinstance(turn, dict) else "off"
        tools = _list(session.get("tools"))
        return [
            f"· session.updated  voice {audio_out.get('voice', '?')}, turn detection {vad}, "
            f"{len(tools)} tools"
        ]

    def _error(self, event: dict[str, Any], now: float) -> list[str]:
        text = _error_text(event)
        self.fail(f"the server sent an error: {text}")
        return [f"✗ error  {text}"]

    def _speech_started(self, event: dict[str, Any], now: float) -> list[str]:
        self.speech_started += 1
        self._final_done = False
        at = event.get("audio_start_ms")
        return [f"  ◉ speech started  at {_seconds(at)} of input audio"]

    def _speech_stopped(self, event: dict[str, Any], now: float) -> list[str]:
        self.speech_stopped += 1
        self._turn_ended_at = now
        at = event.get("audio_end_ms")
        return [f"  ○ speech stopped  at {_seconds(at)} of input audio"]

    def _heard(self, event: dict[str, Any], now: float) -> list[str]:
        return [f"you   ≋ (heard) {event.get('transcript', '')}"]

    def _response_created(self, event: dict[str, Any], now: float) -> list[str]:
        self._in_progress += 1
        self._final_done = False
        return []

    def _first_output(self, event: dict[str, Any], now: float) -> list[str]:
        if event.get("type") == p.OUTPUT_AUDIO_DELTA:
            delta = event.get("delta")
            if isinstance(delta, str):
                self.audio_out_bytes += len(delta) * 3 // 4 - delta[-2:].count("=")
        if self._turn_ended_at is not None:
            self.first_audio_ms.append(round((now - self._turn_ended_at) * 1000, 1))
            self._turn_ended_at = None
        return []

    def _function_call(self, event: dict[str, Any], now: float) -> list[str]:
        return [f"  ⚙ {event.get('name')}({event.get('arguments', '')})"]

    def _transcript_done(self, event: dict[str, Any], now: float) -> list[str]:
        text = event.get("transcript") if "transcript" in event else event.get("text")
        return [f"agent › {text}"] if text else []

    def _response_done(self, event: dict[str, Any], now: float) -> list[str]:
        response = _obj(event.get("response"))
        self._in_progress = max(0, self._in_progress - 1)
        self._stats_fresh = False
        status = response.get("status")
        lines: list[str] = []
        if status == "failed":
            details = response.get("status_details")
            self.fail(f"the model's response failed: {orjson.dumps(details).decode()}")
            lines.append(f"✗ response failed  {orjson.dumps(details).decode()}")
        elif status in ("cancelled", "incomplete"):
            details = response.get("status_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            lines.append(f"· response {status}  ({reason or 'no reason given'})")
        # A completed response that called a tool is not the end: the reply comes after it.
        if status != "completed" or not _has_function_call(response):
            self._final_done = True
        return lines

    def _confirmed(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_CONFIRMED)
        code = event.get("confirmation_number")
        self.confirmation = str(code) if code else None
        repeated = "  (the same booking was already held)" if event.get("repeated") else ""
        if not code:
            self.fail("reservation.confirmed carried no confirmation number")
        return [f"✓ reservation.confirmed  {code}  {describe(event.get('reservation'))}{repeated}"]

    def _found(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_FOUND)
        code = event.get("confirmation_number")
        self.found = str(code) if code else None
        line = f"✓ reservation.found      {code}  {describe(event.get('reservation'))}"
        if self.confirmation is not None and self.found != self.confirmation:
            self.fail(
                f"confirmation numbers differ: booked {self.confirmation}, "
                f"the lookup found {self.found}"
            )
            line = "✗" + line[1:]
        return [line]

    def _not_found(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_NOT_FOUND)
        message = event.get("message") or "no reservation found"
        self.fail(f"the lookup found no reservation: {message}")
        return [f"✗ reservation.not_found  {message}"]

    def _failed(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.RESERVATION_FAILED)
        reason, message = event.get("reason") or "?", event.get("message") or ""
        self.fail(f"the reservation failed ({reason}): {message}")
        return [f"✗ reservation.failed  {reason}: {message}"]

    def _availability(self, event: dict[str, Any], now: float) -> list[str]:
        self._seen.add(p.AVAILABILITY_CHECKED)
        verdict = "available" if event.get("available") else "not available"
        return [
            f"· availability.checked  {event.get('date')} {event.get('time')}  "
            f"party of {event.get('party_size')}: {verdict}"
        ]

    def _session_stats(self, event: dict[str, Any], now: float) -> list[str]:
        self.stats = event
        self._stats_fresh = True
        return []

    # -- the end -----------------------------------------------------------------------------

    def summary(self) -> list[str]:
        """The last session.stats, in words: reply latency, tool calls, tokens."""
        lines = ["── session.stats ──"]
        stats = self.stats
        if stats is None:
            lines.append("  (no session.stats received)")
        else:
            lines.append(f"  reply latency   {_latency(stats.get('reply_latency_ms'))}")
            lines.append(f"  tool calls      {_tool_calls(stats.get('tool_calls'))}")
            lines.append(f"  tokens          {_tokens(stats.get('usage'))}")
            lines.append(
                f"  responses       {stats.get('responses', '?')}, audio frames in "
                f"{stats.get('audio_frames_in', '?')} / out {stats.get('audio_frames_out', '?')}"
            )
        if self.audio_out_bytes:
            seconds = self.audio_out_bytes / (p.PCM16_BYTES_PER_MS * 1000)
            lines.append(f"  agent audio     {seconds:.2f} s received")
        if self.first_audio_ms:
            shown = ", ".join(f"{ms:.0f} ms" for ms in self.first_audio_ms)
            lines.append(f"  first reply     {shown}  (seen by this client, per turn)")
        return lines


_HANDLERS: dict[str, Callable[[CallLog, dict[str, Any], float], list[str]]] = {
    p.SESSION_CREATED: CallLog._session_created,
    p.SESSION_UPDATED: CallLog._session_updated,
    p.ERROR: CallLog._error,
    p.SPEECH_STARTED: CallLog._speech_started,
    p.SPEECH_STOPPED: CallLog._speech_stopped,
    p.INPUT_TRANSCRIPTION_COMPLETED: CallLog._heard,
    p.RESPONSE_CREATED: CallLog._response_created,
    p.OUTPUT_AUDIO_DELTA: CallLog._first_output,
    p.OUTPUT_TEXT_DELTA: CallLog._first_output,
    p.FUNCTION_ARGS_DONE: CallLog._function_call,
    p.OUTPUT_TRANSCRIPT_DONE: CallLog._transcript_done,
    p.OUTPUT_TEXT_DONE: CallLog._transcript_done,
    p.RESPONSE_DONE: CallLog._response_done,
    p.RESERVATION_CONFIRMED: CallLog._confirmed,
    p.RESERVATION_FOUND: CallLog._found,
    p.RESERVATION_NOT_FOUND: CallLog._not_found,
    p.RESERVATION_FAILED: CallLog._failed,
    p.AVAILABILITY_CHECKED: CallLog._availability,
    p.SESSION_STATS: CallLog._session_stats,
}


def _seconds(ms: Any) -> str:
    return f"{ms / 1000:.2f} s" if isinstance(ms, int | float) else "?"


def _latency(summary: Any) -> str:
    if not isinstance(summary, dict) or not summary.get("count"):
        return "none measured (it runs from the end of the caller's speech to the first audio)"
    return (
        f"last {summary.get('last')} ms, p50 {summary.get('p50')} ms, max {summary.get('max')} ms"
        f"  ({summary['count']} spoken turn{'' if summary['count'] == 1 else 's'})"
    )


def _tool_calls(calls: Any) -> str:
    if not isinstance(calls, list) or not calls:
        return "none"
    return ", ".join(
        f"{call.get('name')} {call.get('duration_ms')} ms{'' if call.get('ok') else ' (failed)'}"
        for call in calls
        if isinstance(call, dict)
    )


def _tokens(usage: Any) -> str:
    if not isinstance(usage, dict) or not usage:
        return "none reported"
    text = (
        f"{usage.get('total_tokens', 0)} total (input {usage.get('input_tokens', 0)}, "
        f"output {usage.get('output_tokens', 0)})"
    )
    audio = [f"{side} {usage[f'{side}_audio_tokens']}" for side in ("input", "output")
             if f"{side}_audio_tokens" in usage]  # fmt: skip
    return text + (f"; audio: {', '.join(audio)}" if audio else "")


# --- audio: WAV in, 24 kHz PCM16 frames out ----------------------------------------------------


def resample_linear(samples: Sequence[int], src_rate: int, dst_rate: int) -> array[int]:
    """Linear interpolation between neighbours: plenty for a VAD, and needs no numpy."""
    if src_rate == dst_rate or not samples:
        return array("h", samples)
    count = max(1, round(len(samples) * dst_rate / src_rate))
    step = src_rate / dst_rate
    last = len(samples) - 1
    out = array("h", bytes(2 * count))
    for index in range(count):
        position = index * step
        left = min(int(position), last)
        right = min(left + 1, last)
        fraction = position - left
        out[index] = round(samples[left] + (samples[right] - samples[left]) * fraction)
    return out


def read_wav(path: Path) -> tuple[bytes, int, float]:
    """PCM16 little-endian mono at 24 kHz, the file's own rate, and its duration in seconds."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise DemoFailed(f"cannot read {path}: {exc}") from None
    if channels != 1 or width != 2:
        raise DemoFailed(
            f"{path} is {channels}-channel {8 * width}-bit audio; the demo streams 16-bit mono"
        )
    samples = array("h")
    samples.frombytes(raw[: len(raw) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian on disk, and on the wire too
    converted = resample_linear(samples, rate, p.PCM16_RATE)
    if sys.byteorder == "big":
        converted.byteswap()
    return converted.tobytes(), rate, len(samples) / rate if rate else 0.0


def load_microphone(path: Path) -> tuple[bytes, str]:
    """The file's audio ready to stream, and the line that announces it."""
    pcm, rate, seconds = read_wav(path)
    resampled = "" if rate == p.PCM16_RATE else f", resampled {rate} → {p.PCM16_RATE} Hz"
    return pcm, f"[streaming {path.name}: {seconds:.2f} s{resampled}]"


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> Iterator[bytes]:
    """Fixed 20 ms frames; the last one padded with silence so each lasts the same."""
    for start in range(0, len(pcm), frame_bytes):
        chunk = pcm[start : start + frame_bytes]
        yield chunk + bytes(frame_bytes - len(chunk))


# --- the I/O ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    url: str = DEFAULT_URL
    name: str = DEFAULT_NAME
    phone: str = ""  # empty: a random Singapore mobile
    wav: Path | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    sip: bool = False  # a phone call over SIP instead (demo.sip: self-contained)


class DemoCall:
    """One connection: a reader task feeding ``CallLog``, and the script that waits on it."""

    def __init__(self, ws: ClientConnection, log: CallLog, timeout: float, write: Write):
        self.ws = ws
        self.log = log
        self.timeout = timeout
        self.write = write
        self.changed = asyncio.Event()  # set after every event: waiters re-check their condition
        self.leaving = False  # we are closing the socket: its close is not a failure
        self.loop = asyncio.get_running_loop()
        self.reader = asyncio.create_task(self._read(), name="demo-reader")

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    event = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self.write("? a frame that is not JSON was ignored")
                    continue
                if isinstance(event, dict):
                    self._print(self.log.feed(event, self.loop.time()))
                    self.changed.set()
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug here must end the demo with a reason, not hang it
            self.log.fail(f"the demo could not handle an event: {exc!r}")
        finally:
            if not self.leaving:
                self._print(self.log.closed(self.ws.close_code, self.ws.close_reason or ""))
            self.changed.set()

    def _print(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    async def wait_until(
        self, condition: Callable[[], bool], what: str, within_s: float | None = None
    ) -> None:
        """Until ``condition`` holds; raises ``DemoFailed`` on failure, close or timeout."""
        timeout = within_s or self.timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.log.failure is not None:
                        raise DemoFailed(self.log.failure)
                    if condition():
                        return
                    if self.reader.done():
                        raise DemoFailed("the connection ended")
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise DemoFailed(f"no answer within {timeout:g} s while waiting for {what}") from None

    async def send(self, event: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.ws.send(orjson.dumps(event).decode())
        except ConnectionClosed:
            await asyncio.wait({self.reader}, timeout=1)  # let the reader record why
            raise DemoFailed(self.log.failure or "the connection closed while sending") from None
        except TimeoutError:
            raise DemoFailed(f"could not send within {self.timeout:g} s") from None

    async def say(self, text: str) -> None:
        """A typed turn, exactly as the page sends one."""
        self._print(self.log.user_turn(text, self.loop.time()))
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        await self.send({"type": p.ITEM_CREATE, "event_id": p.event_id("demo"), "item": item})
        await self.send({"type": p.RESPONSE_CREATE, "event_id": p.event_id("demo")})

    async def run_step(self, step: Step) -> None:
        """Say the step's line; if the agent only asks back, confirm, up to ``MAX_NUDGES`` times."""
        text = step.text
        for _ in range(1 + MAX_NUDGES):
            await self.say(text)
            await self.wait_until(lambda: self.log.turn_over, f"the {step.name} reply")
            if self.log.satisfied(step):
                return
            text = step.nudge
        raise DemoFailed(f"the agent never sent {step.expect} in {1 + MAX_NUDGES} turns")

    async def stream_audio(self, pcm: bytes, label: str) -> None:
        """Stream 24 kHz PCM16 as a live microphone would, then let the audio turn finish."""
        self._print(self.log.audio_turn(label))
        pcm += bytes(TRAILING_SILENCE_MS * p.PCM16_BYTES_PER_MS)
        # Paced against one monotonic schedule: frame i leaves at start + i * 20 ms, however
        # long each send took, so the stream neither drifts nor bursts.
        start = self.loop.time()
        for index, frame in enumerate(frames(pcm)):
            delay = start + index * FRAME_MS / 1000 - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.log.failure is not None:
                raise DemoFailed(self.log.failure)
            audio = base64.b64encode(frame).decode()
            await self.send({"type": p.INPUT_AUDIO_APPEND, "audio": audio})
        if self.log.speech_started == 0:
            self.write("  (no speech detected in the audio)")
            await self.send({"type": p.INPUT_AUDIO_CLEAR, "event_id": p.event_id("demo")})
            return
        await self.wait_until(lambda: self.log.turn_over, "the reply to the audio")

    async def leave(self) -> None:
        """Close politely; the reader's end is ours, not a failure."""
        self.leaving = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.ws.close()
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


async def run_demo(options: Options, write: Write = print, report: Write | None = None) -> int:
    """The whole demo; returns the exit status. ``write`` gets the transcript, ``report`` the
    verdict on failure (stderr from the CLI)."""
    report = report or write
    try:  # a bad file is reported before anything is sent
        microphone = load_microphone(options.wav) if options.wav is not None else None
    except DemoFailed as exc:
        report(f"demo failed: {exc}")
        return 1
    url = realtime_url(options.url)
    phone = options.phone or random_sg_mobile()
    log = CallLog()
    write(f"calling {url} as {options.name}, {phone}")
    try:
        async with asyncio.timeout(options.timeout):
            ws = await connect(url, open_timeout=None, max_size=16 * 1024 * 1024, compression=None)
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        reason = str(exc) or type(exc).__name__
        report(f"demo failed: could not connect to {url}: {reason}")
        return 1
    call = DemoCall(ws, log, options.timeout, write)
    try:
        await call.wait_until(lambda: log.ready, "the session to start")
        if microphone is not None:
            await call.stream_audio(*microphone)
        for step in script(options.name, phone):
            await call.run_step(step)
        if not log.stats_fresh:
            with contextlib.suppress(DemoFailed):
                grace = min(options.timeout, STATS_GRACE_S)
                await call.wait_until(lambda: log.stats_fresh, "session.stats", grace)
        if not log.succeeded:
            raise DemoFailed(log.failure or "the booking was not found again")
    except DemoFailed as exc:
        log.fail(str(exc))
    finally:
        await call.leave()
    for line in log.summary():
        write(line)
    if log.failure is not None:
        report(f"demo failed: {log.failure}")
        return 1
    write(await asyncio.to_thread(guest_text, options.url, phone))
    write(f"demo passed: booked {log.confirmation} and found it again with the same number")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run a scripted call (book a table, then look it up) against a running "
        "server. Exits 0 when the booking is confirmed and found again.",
    )
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"relay endpoint (default {DEFAULT_URL})"
    )
    parser.add_argument(
        "--name", default=DEFAULT_NAME, help=f"caller name (default {DEFAULT_NAME})"
    )
    parser.add_argument(
        "--phone",
        nargs="?",
        const=PHONE_LINE,
        default="",
        help="caller phone (default: a random +65 9xxx xxxx mobile); alone: call over Twilio's "
        "media-stream protocol (webhook, greeting, barge-in, keypad, hang-up)",
    )
    parser.add_argument(
        "--wav", type=Path, help="a 16-bit mono WAV to stream first as the microphone"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for each step (default %(default)s)",
    )
    parser.add_argument(
        "--sip",
        action="store_true",
        help="a phone call over SIP instead, with the offline model playing OpenAI and the "
        "carrier and the server started in this process (see demo/sip.py)",
    )
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return Options(args.url, args.name, args.phone, args.wav, args.timeout, args.sip)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a C-locale console must not crash on "✓"
            stream.reconfigure(errors="replace")
    if options.phone == PHONE_LINE:
        from demo import phone as phone_demo

        return phone_demo.main(phone_demo.options_from(options.url, options.wav, options.timeout))

    def out(line: str) -> None:
        print(line, flush=True)

    def err(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if options.sip:
            from demo.sip import run_sip_demo  # starts a server: only when asked

            phone = options.phone or random_sg_mobile()
            return asyncio.run(run_sip_demo(options.name, phone, options.timeout, out, err))
        return asyncio.run(run_demo(options, out, err))
    except KeyboardInterrupt:
        err("demo interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
