"""A scripted call against a running server: book a table, then look it up again.

``python -m demo`` (or ``make demo``) is the quickest end-to-end check that the page's
path works: WebSocket relay, model (the OpenAI Realtime API or the offline one), tool calls and
PostgreSQL. It speaks to ``/v1/realtime`` exactly as the browser page does -- typed turns as user
messages plus ``response.create``, audio as 20 ms ``input_audio_buffer.append`` frames -- and
prints the call as it happens. It exits 0 only when the booking was confirmed *and* a lookup
with the same phone and name returned the same confirmation number, so it can gate a deploy.

This module is the I/O: ``DemoCall`` runs one reader task feeding ``CallLog`` (`demo.call_log`,
pure: events in, lines and a verdict out) and the script (`demo.steps`) sending turns and
waiting -- each wait bounded by ``asyncio.timeout`` -- for ``CallLog`` to say the turn is over.
The command line is `demo.cli`; the microphone, `demo.microphone`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from demo.call_log import CallLog
from demo.microphone import FRAME_MS, TRAILING_SILENCE_MS, frames, load_microphone
from demo.steps import (
    DEFAULT_NAME,
    DEFAULT_TIMEOUT_S,
    DEFAULT_URL,
    DemoFailed,
    Step,
    random_sg_mobile,
    realtime_url,
    script,
)
from demo.texts import guest_text
from protocol import realtime as p

MAX_NUDGES = 2  # a real model reads details back and asks "shall I book it?" before booking
STATS_GRACE_S = 2.0  # session.stats follows response.done at once; don't hang if it doesn't

Write = Callable[[str], None]


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
