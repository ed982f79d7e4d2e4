"""The load generator's Twilio mode: each call is Twilio's side of a media stream.

`python -m bench.loadgen --twilio --url ws://127.0.0.1:PORT/twilio/media-stream --calls 200`
runs the same schedule, window and matching as the `/v1/realtime` mode (see `bench.loadgen`),
speaking Twilio Media Streams instead, so the two paths are measured by the same clock code:

* Opening: no webhook is posted (with `TWILIO_AUTH_TOKEN` unset the server accepts a stream
  without a token); the call opens `/twilio/media-stream` and sends `connected` and `start` with
  its own `streamSid`/`callSid` and a `caller` custom parameter, as Twilio does after our TwiML.
  The server answers nothing until there is audio, so a call counts as connected once `start` is
  sent; a refused stream shows up as the server closing it (`closed_by_server`).
* Audio: one `media` message per `--frame-ms` (20 ms: 160 bytes of μ-law, 216 base64 characters,
  what Twilio sends), the payload starting with the same 12-byte call/sequence header as the
  other mode. The server forwards it to the echo model as an append; the echo comes back as a
  delta, which the server turns into a `media` message followed by a `mark`; the payload names
  the frame, so latency and loss are measured exactly as for the browser path.
* Marks: every `mark` is sent back at once, as Twilio does once the audio before it has played.
  Twilio would echo it up to a frame later (when that audio has played); the number of messages,
  which is what costs CPU, is the same. Echoing the server's text verbatim costs nothing to build.
* `--frame-ms 60` sends 480-byte frames every 60 ms instead (Twilio always sends 20 ms; this
  is the bench's stand-in for coalescing, see `bench.phone`).

Frames of the host's greeting (the server asks the model for one at `start`) carry no header:
they are counted as `unmatched`, like any other unrecognised payload.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.calls import HEADER, MAGIC, MAX_SIZE, Call, _now, frames_in_payload

if TYPE_CHECKING:
    from bench.calls import Run

MULAW_BYTES_PER_MS = 8
MEDIA_PREFIX = '{"event":"media"'
MARK_PREFIX = '{"event":"mark"'
CLEAR_PREFIX = '{"event":"clear"'
PAYLOAD_KEY = '"payload":"'
CALLER = "+6598207272"


def stream_sid(index: int) -> str:
    return f"MZ{index:032x}"


def call_sid(index: int) -> str:
    return f"CA{index:032x}"


def body(frame_ms: int) -> str:
    """Base64 of a frame's μ-law silence after the 12-byte header (a multiple of 3 bytes)."""
    return base64.b64encode(b"\xff" * (frame_ms * MULAW_BYTES_PER_MS - HEADER.size)).decode()


def start_messages(index: int) -> tuple[str, str]:
    """Twilio's `connected` and `start` for call `index`."""
    sid = stream_sid(index)
    connected = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
    start = (
        f'{{"event":"start","sequenceNumber":"1","streamSid":"{sid}","start":{{"streamSid":"{sid}",'
        f'"accountSid":"AC{0:032x}","callSid":"{call_sid(index)}","tracks":["inbound"],'
        f'"customParameters":{{"caller":"{CALLER}"}},"mediaFormat":{{"encoding":"audio/x-mulaw",'
        f'"sampleRate":8000,"channels":1}}}}}}'
    )
    return connected, start


def media_text(sid: str, payload_body: str, call: int, seq: int, frame_ms: int) -> str:
    """One Twilio `media` message; its payload starts with the call/sequence header."""
    header = base64.b64encode(HEADER.pack(MAGIC, call, seq)).decode()
    return (
        f'{{"event":"media","sequenceNumber":"{seq + 2}","streamSid":"{sid}","media":'
        f'{{"track":"inbound","chunk":"{seq + 1}","timestamp":"{seq * frame_ms}",'
        f'"payload":"{header}{payload_body}"}}}}'
    )


def parse_media(text: str, frame_bytes: int) -> list[tuple[int, int]]:
    """(call index, sequence number) of each frame a server `media` message carries."""
    return frames_in_payload(text, PAYLOAD_KEY, frame_bytes)


class PhoneCall(Call):
    """One call as Twilio: `start`, media every frame, marks echoed, media matched."""

    __slots__ = ("clears", "marks_in_window", "media_in_window", "sid")

    def __init__(self, run: Run, index: int):
        super().__init__(run, index)
        self.sid = stream_sid(index)
        self.frame_bytes = run.args.frame_ms * MULAW_BYTES_PER_MS
        self.marks_in_window = 0  # marks received (and echoed) during the window
        self.media_in_window = 0  # media received during the window (matched or not)
        self.clears = 0

    async def open(self, start_at: float) -> None:
        args = self.run.args
        await asyncio.sleep(max(0.0, start_at - _now()))
        try:
            async with asyncio.timeout(args.connect_timeout):
                self.ws = await connect(
                    args.url,
                    max_queue=None,
                    compression=None,
                    max_size=MAX_SIZE,
                    ping_interval=None,
                    close_timeout=2,
                    proxy=None,
                    user_agent_header=None,
                )
                for text in start_messages(self.index):
                    await self.ws.send(text)
        except TimeoutError:
            self.fail("connect_timeout")
            return
        except (OSError, InvalidHandshake, ConnectionClosed) as exc:
            self.fail(f"connect_{type(exc).__name__}")
            return
        self.ready.set()

    async def send_audio(self) -> None:
        run, ws, index, sid = self.run, self.ws, self.index, self.sid
        assert ws is not None
        frame_ms = run.args.frame_ms
        frame_s = frame_ms / 1000
        payload_body = body(frame_ms)
        sent, received, lags = self.sent, self.received, run.send_lags
        t0 = _now() + self.phase * frame_ms / 20
        seq = 0
        while True:
            due = t0 + seq * frame_s
            if due >= run.stop_at:
                return
            delay = due - _now()
            if delay > 0:
                await asyncio.sleep(delay)
            text = media_text(sid, payload_body, index, seq, frame_ms)
            now = _now()
            sent.append(now)
            received.append(0)
            if run.window_start <= now < run.window_end:
                run.sent_in_window += 1
                run.frames_in += 1
                lags.append(now - due)
            try:
                await ws.send(text)
            except ConnectionClosed:
                self.fail("closed_while_sending")
                return
            seq += 1

    async def receive(self) -> None:
        run, ws = self.run, self.ws
        assert ws is not None
        try:
            async for message in ws:
                now = _now()
                if not isinstance(message, str):
                    run.errors["binary_from_server"] += 1
                    continue
                in_window = run.window_start <= now < run.window_end
                if message.startswith(MARK_PREFIX):
                    if in_window:
                        self.marks_in_window += 1
                    await ws.send(message)  # Twilio: "this audio has played"
                    continue
                if not message.startswith(MEDIA_PREFIX):
                    if message.startswith(CLEAR_PREFIX):
                        self.clears += 1
                    continue
                named = parse_media(message, self.frame_bytes)
                if in_window:
                    run.frames_out += len(named) or 1
                    run.messages_out += 1
                    self.media_in_window += 1
                if not named:
                    run.late_or_unmatched += 1
                    continue
                for frame in named:
                    self.echoed(frame, now)
        except ConnectionClosed:
            if _now() < run.stop_at:
                self.fail("closed_by_server")


def figures(run: Run, window_s: float) -> dict[str, Any]:
    """The Twilio mode's own counts, for `stream_run`'s result."""
    frame_ms = run.args.frame_ms
    calls = [c for c in run.calls if isinstance(c, PhoneCall)]
    marks = sum(c.marks_in_window for c in calls)
    media_out = sum(c.media_in_window for c in calls)
    connected = sum(c.ready.is_set() for c in calls) or 1
    return {
        "protocol": "twilio",
        "frame_ms": frame_ms,
        "frame_bytes": frame_ms * MULAW_BYTES_PER_MS,
        "frame_chars": len(media_text(stream_sid(0), body(frame_ms), 0, 0, frame_ms)),
        "marks_echoed": marks,
        # messages the server read (media + echoed marks) and wrote (media + marks)
        "messages_in": run.frames_in + marks,
        "messages_out": media_out + marks,
        "to_twilio_per_call_s": round((media_out + marks) / connected / window_s, 1)
        if window_s > 0
        else None,
        "clears": sum(c.clears for c in calls),
    }
