"""`python -m demo --phone [--wav FILE]`: a caller over Twilio's protocol, with no Twilio.

It does what Twilio does when someone rings the restaurant's number, against a running server
(`make run`; default http://127.0.0.1:8000):

1. posts the voice webhook (form-encoded, signed with `TWILIO_AUTH_TOKEN` by the `twilio`
   library's `RequestValidator` when that is set, as Twilio signs it) and reads the TwiML;
2. opens the `<Stream>` URL with the TwiML's `<Parameter>`s in `start`, and from then on sends a
   160-byte μ-law `media` every 20 ms, silence unless the caller speaks, as a phone line does;
3. plays what the server sends in real time: each `media` is queued behind the audio before it,
   each `mark` is sent back when the audio before it has "played", and a `clear` drops what is
   queued (its marks are sent back at once, as Twilio reportedly does);
4. shows the greeting arriving (time to the first media, ms of audio), speaks over it (made-up
   speech or `--wav`) and waits for the server's `clear` (barge-in), types keypad digits and
   waits for the host's spoken answer, then hangs up with `stop` — unless the host ends the
   call first by closing the stream.

It exits 0 when the greeting arrived, the barge-in was cleared, the digits were answered and the
call ended. This module is the I/O (`PhoneCall`) and the caller's script; the playback clock
and the verdict are `demo.phone_log` (pure), the webhook and its TwiML `demo.twiml`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from demo import phone_audio
from demo.phone_log import PhoneDemoFailed, PhoneLog, PhonePlayer, Reply
from demo.texts import guest_text
from demo.twiml import ACCOUNT_SID, VOICE_PATH, http_base, parse_twiml, post_webhook, webhook_form

DEFAULT_BASE = "http://127.0.0.1:8000"
BARGE_IN_AFTER_S = 0.3  # the caller starts talking this far into the greeting
SPEECH_MS = 1200  # made-up speech when no --wav is given
QUIET_S = 0.6  # a reply is over when nothing more arrived for this long and all of it played
DIGIT_GAP_S = 0.12  # between keypad presses
HANG_UP_GRACE_S = 0.5  # after the last reply, time for the host to end the call first

Write = Callable[[str], None]


@dataclass(frozen=True)
class PhoneOptions:
    url: str = DEFAULT_BASE
    caller: str = "+6598207272"
    digits: str = "98207272#"
    wav: Path | None = None
    timeout: float = 30.0
    auth_token: str | None = None


class PhoneCall:
    """One media stream: a reader (plays, acks marks), a microphone, and the script."""

    def __init__(self, ws: ClientConnection, stream_sid: str, options: PhoneOptions, write: Write):
        self.ws = ws
        self.sid = stream_sid
        self.options = options
        self.write = write
        self.loop = asyncio.get_running_loop()
        self.player = PhonePlayer()
        self.log = PhoneLog()
        self.changed = asyncio.Event()
        self.speech: list[bytes] = []  # frames the microphone sends before going back to silence
        self.chunk = 0
        self.spoke_at: float | None = None
        self.spoken = asyncio.Event()  # set while the microphone sends silence
        self.hanging_up = False
        self.tasks: list[asyncio.Task[None]] = []

    def now(self) -> float:
        return self.loop.time()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def start(self, call_sid: str, parameters: dict[str, str]) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.log.started_at = self.now()
        await self.send(
            {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": self.sid,
                "start": {
                    "streamSid": self.sid,
                    "accountSid": ACCOUNT_SID,
                    "callSid": call_sid,
                    "tracks": ["inbound"],
                    "customParameters": parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
        )
        self.tasks = [
            asyncio.create_task(self._read(), name="phone-reader"),
            asyncio.create_task(self._microphone(), name="phone-microphone"),
            asyncio.create_task(self._marks(), name="phone-marks"),
        ]

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = orjson.loads(raw)
                event = message.get("event") if isinstance(message, dict) else None
                now = self.now()
                if event == "media":
                    payload = message["media"]["payload"]
                    size = len(base64.b64decode(payload))
                    self.player.media(size, now)
                    self.log.media(size, now)
                elif event == "mark":
                    self.player.mark(message["mark"]["name"], now)
                elif event == "clear":
                    await self._cleared(now)
                self.changed.set()
        except ConnectionClosed:
            pass
        except Exception as exc:  # a bug here must end the demo with a reason, not hang it
            self.log.fail(f"the demo could not handle a message: {exc!r}")
        finally:
            if not self.hanging_up and self.log.ended is None:
                self.log.closed_code = self.ws.close_code
                self.log.ended = (
                    f"the host ended the call (stream closed, code {self.ws.close_code})"
                )
                self.write(f"☎ {self.log.ended}")
            self.changed.set()

    async def _cleared(self, now: float) -> None:
        dropped, names = self.player.clear(now)
        log = self.log
        if not log.cleared:
            log.cleared = True
            log.dropped_ms = dropped
            log.heard_greeting_ms = max(0.0, log.greeting.ms - dropped)
            spoke_at = self.spoke_at if self.spoke_at is not None else now
            log.clear_after_speech_ms = 1000 * (now - spoke_at)
            self.write(
                f"✂ clear: the server stopped the greeting {log.clear_after_speech_ms:.0f} ms "
                f"after you began; you heard {log.heard_greeting_ms:.0f} ms of "
                f"{log.greeting.ms:.0f} ms"
            )
        for name in names:
            await self._mark_back(name)

    async def _mark_back(self, name: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.send({"event": "mark", "streamSid": self.sid, "mark": {"name": name}})
            self.log.marks_sent += 1

    async def _marks(self) -> None:
        """Send each mark back when the audio before it has played."""
        while True:
            for name in self.player.due_marks(self.now()):
                await self._mark_back(name)
            due = self.player.next_due()
            self.changed.clear()
            if due is None:
                await self.changed.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, due - self.now())):
                        await self.changed.wait()

    async def _microphone(self) -> None:
        """A 20 ms μ-law frame every 20 ms, on one drift-free schedule: speech or silence."""
        silence = base64.b64encode(bytes([phone_audio.SILENCE]) * phone_audio.FRAME_BYTES).decode()
        began = self.now()
        while True:
            delay = began + self.chunk * phone_audio.FRAME_MS / 1000 - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.speech:
                payload = base64.b64encode(self.speech.pop(0)).decode()
            else:
                payload = silence
                self.spoken.set()
            self.chunk += 1
            media = {
                "track": "inbound",
                "chunk": str(self.chunk),
                "timestamp": str(self.chunk * phone_audio.FRAME_MS),
                "payload": payload,
            }
            try:
                await self.send({"event": "media", "streamSid": self.sid, "media": media})
            except ConnectionClosed:
                return

    async def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(self.options.timeout):
                while not condition():
                    if self.log.failure is not None:
                        raise PhoneDemoFailed(self.log.failure)
                    if self.log.ended is not None:
                        raise PhoneDemoFailed(f"{self.log.ended} while waiting for {what}")
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise PhoneDemoFailed(
                f"nothing within {self.options.timeout:g} s while waiting for {what}"
            ) from None

    def reply_over(self, reply: Reply) -> bool:
        now = self.now()
        return (
            reply.last_at is not None and now - reply.last_at >= QUIET_S and self.player.idle(now)
        )

    async def wait_reply(self, reply: Reply, what: str) -> None:
        """Until the reply has arrived and played: re-checked at least every 100 ms."""
        await self.wait_until(lambda: reply.first_at is not None, what)
        while not self.reply_over(reply):
            if self.log.ended is not None:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    self.changed.clear()
                    await self.changed.wait()

    async def speak(self, audio: bytes) -> None:
        self.spoke_at = self.now()
        self.spoken.clear()
        self.speech.extend(phone_audio.frames(audio))

    async def speaking_done(self) -> None:
        await self.spoken.wait()

    async def dtmf(self, digits: str) -> None:
        for digit in digits:
            await self.send(
                {
                    "event": "dtmf",
                    "streamSid": self.sid,
                    "dtmf": {"track": "inbound_track", "digit": digit},
                }
            )
            await asyncio.sleep(DIGIT_GAP_S)

    async def hang_up(self) -> None:
        self.hanging_up = True
        with contextlib.suppress(ConnectionClosed):
            await self.send({"event": "stop", "streamSid": self.sid, "stop": {}})
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.ws.close()

    async def finish(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if not self.hanging_up:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.ws.close()


async def script(call: PhoneCall, voice: bytes, label: str) -> None:
    log, write = call.log, call.write
    await call.wait_until(lambda: log.greeting.first_at is not None, "the greeting")
    assert log.greeting.first_at is not None and log.started_at is not None
    waited = 1000 * (log.greeting.first_at - log.started_at)
    write(f"host ▸ greeting: first media {waited:.0f} ms after start")
    await asyncio.sleep(max(0.0, log.greeting.first_at + BARGE_IN_AFTER_S - call.now()))
    if call.player.idle(call.now()):
        raise PhoneDemoFailed("the greeting had finished playing before the caller could speak")
    log.stage = "speech"
    write(f"you  ≋ speaking over the greeting: {label}")
    await call.speak(voice)
    await call.wait_until(lambda: log.cleared, "the server to clear the greeting (barge-in)")
    await call.speaking_done()
    write(f"host ▸ greeting: {log.greeting.ms:.0f} ms of audio received in all")
    with contextlib.suppress(PhoneDemoFailed):  # a model may have nothing to say to a noise
        await call.wait_reply(log.after_speech, "a reply to your speech")
    if log.after_speech.ms:
        write(f"host ▸ replied to your speech: {log.after_speech.ms:.0f} ms of audio")
    else:
        write("host ▸ (no reply to your speech)")
    log.stage = "digits"
    typed_at = call.now()
    write(f"you  ⌨ {call.options.digits}")
    await call.dtmf(call.options.digits)
    await call.wait_reply(log.after_digits, "the host's answer to the keypad digits")
    first = log.after_digits.first_at
    if first is not None:
        write(
            f"host ▸ answered the keypad: {log.after_digits.ms:.0f} ms of audio, first media "
            f"{1000 * (first - typed_at):.0f} ms after the first digit"
        )
    if log.ended is None:
        await asyncio.sleep(HANG_UP_GRACE_S)
    if log.ended is None:
        await call.hang_up()
        log.ended = "you hung up (stop)"
        write(f"☎ {log.ended}")


async def run_phone_demo(
    options: PhoneOptions, write: Write = print, report: Write | None = None
) -> int:
    """The whole phone demo; returns the exit status."""
    report = report or write
    try:
        if options.wav is not None:
            voice, seconds = phone_audio.read_wav(options.wav)
            label = f"{options.wav.name}, {seconds:.2f} s as 8 kHz μ-law"
        else:
            voice, label = (
                phone_audio.speech_like(SPEECH_MS),
                f"{SPEECH_MS} ms of speech-like audio",
            )
    except phone_audio.AudioError as exc:
        report(f"phone demo failed: {exc}")
        return 1
    base = http_base(options.url)
    call_sid = "CA" + secrets.token_hex(16)
    webhook = base + VOICE_PATH
    signed = " (signed)" if options.auth_token else ""
    write(f"ringing {webhook}{signed} from {options.caller}, call {call_sid}")
    try:
        twiml = await asyncio.to_thread(
            post_webhook,
            webhook,
            webhook_form(call_sid, options.caller),
            options.auth_token,
            options.timeout,
        )
        stream_url, parameters = parse_twiml(twiml)
    except PhoneDemoFailed as exc:
        report(f"phone demo failed: {exc}")
        return 1
    shown = ", ".join(f"{k}={v if k != 'token' else '…'}" for k, v in parameters.items())
    write(f"TwiML: stream {stream_url} ({shown})")
    try:
        async with asyncio.timeout(options.timeout):
            ws = await connect(stream_url, open_timeout=None, compression=None, proxy=None)
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        report(f"phone demo failed: could not open {stream_url}: {exc or type(exc).__name__}")
        return 1
    call = PhoneCall(ws, "MZ" + secrets.token_hex(16), options, write)
    try:
        await call.start(call_sid, parameters)
        await script(call, voice, label)
    except PhoneDemoFailed as exc:
        call.log.fail(str(exc))
    finally:
        await call.finish()
    for line in call.log.summary():
        write(line)
    if not call.log.succeeded:
        report(f"phone demo failed: {call.log.failure or 'the call did not go as scripted'}")
        return 1
    write(await asyncio.to_thread(guest_text, base, options.caller))
    write("phone demo passed: greeting, barge-in cleared, keypad answered, call ended")
    return 0


def options_from(url: str, wav: Path | None, timeout: float) -> PhoneOptions:
    """The demo's command line as phone options (the caller is a fixed test number)."""
    token = os.environ.get("TWILIO_AUTH_TOKEN") or None
    return PhoneOptions(url=http_base(url), wav=wav, timeout=timeout, auth_token=token)


def main(options: PhoneOptions) -> int:
    def out(line: str) -> None:
        print(line, flush=True)

    def err(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        return asyncio.run(run_phone_demo(options, out, err))
    except KeyboardInterrupt:
        err("phone demo interrupted")
        return 130
