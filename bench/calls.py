"""One simulated browser call of the load generator, and the state a run's calls share.

Split from `loadgen` so the phone variant (`phoneload`) can build on `Call` without the load
generator's command line importing it back.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import math
import struct
import time
from collections import Counter

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

FRAME_S = 0.020  # 20 ms of audio per frame, 50 frames per second
CODEC_FRAME_BYTES = {"pcm16": 960, "g711": 160}  # 24 kHz x 2 bytes x 20 ms; 8 kHz x 1 byte x 20 ms
MAGIC = b"BNCH"
HEADER = struct.Struct(">4sII")  # magic, call index, sequence number: 12 bytes = 16 base64 chars
HEADER_CHARS = 16
APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'
APPEND_TAIL = '"}'
DELTA_PREFIX = '{"type":"response.output_audio.delta"'
DELTA_KEY = '"delta":"'
MAX_SIZE = 16 * 1024 * 1024
GOLDEN = (math.sqrt(5) - 1) / 2
_now = time.perf_counter


def audio_body(codec: str) -> str:
    """Base64 of a frame's audio after the 12-byte header, computed once per run.

    base64(header + body) == base64(header) + base64(body) because the header is a multiple of 3
    bytes, so a frame costs one 12-byte encode, not a 960-byte one.
    """
    size = CODEC_FRAME_BYTES[codec] - HEADER.size
    if codec == "pcm16":  # a quiet 440 Hz tone, little-endian int16
        samples = size // 2
        pcm = struct.pack(
            f"<{samples}h",
            *(int(800 * math.sin(2 * math.pi * 440 * i / 24_000)) for i in range(samples)),
        )
        return base64.b64encode(pcm).decode()
    return base64.b64encode(b"\xff" * size).decode()  # mu-law silence


def frame_text(body: str, call: int, seq: int) -> str:
    header = base64.b64encode(HEADER.pack(MAGIC, call, seq)).decode()
    return f"{APPEND_HEAD}{header}{body}{APPEND_TAIL}"


def parse_delta(text: str, frame_bytes: int) -> list[tuple[int, int]]:
    """(call index, sequence number) of each frame an echoed delta carries (none: unmatched)."""
    return frames_in_payload(text, DELTA_KEY, frame_bytes)


def frames_in_payload(text: str, key: str, frame_bytes: int) -> list[tuple[int, int]]:
    """The frames named in the base64 value after `key`: one, or several where the relay
    coalesced audio (each frame starts with its own header, every `frame_bytes` bytes)."""
    at = text.find(key)
    if at < 0:
        return []
    at += len(key)
    end = text.find('"', at)
    try:
        if (end - at) * 3 // 4 <= frame_bytes:  # one frame: decode its header only
            data = base64.b64decode(text[at : at + HEADER_CHARS])
        else:
            data = base64.b64decode(text[at:end])
        named = []
        for offset in range(0, len(data), frame_bytes):
            magic, call, seq = HEADER.unpack_from(data, offset)
            if magic != MAGIC:
                return []
            named.append((call, seq))
    except (binascii.Error, struct.error, ValueError):
        return []
    return named


class Run:
    """State shared by every call of one run (one event loop, so no locks)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.body = audio_body(args.codec)
        self.window_start = math.inf  # perf_counter values; set once every call is connected
        self.window_end = math.inf
        self.stop_at = math.inf  # senders stop at this time
        self.latencies: list[float] = []
        self.send_lags: list[float] = []
        self.sent_in_window = 0
        self.echoed_in_window = 0
        self.frames_in = 0  # appends sent during the window
        self.frames_out = 0  # frames echoed during the window (a message may carry several)
        self.messages_out = 0  # audio messages received during the window
        self.out_of_order = 0
        self.duplicates = 0
        self.misrouted = 0
        self.late_or_unmatched = 0
        self.errors: Counter[str] = Counter()
        self.calls: list[Call] = []
        self.all_echoed = asyncio.Event()
        self.timeline: list[tuple[float, float]] | None = [] if args.timeline_ms else None


class Call:
    __slots__ = (
        "error",
        "frame_bytes",
        "index",
        "last_seq",
        "phase",
        "ready",
        "received",
        "run",
        "sent",
        "ws",
    )

    def __init__(self, run: Run, index: int):
        self.run = run
        self.index = index
        self.ws: ClientConnection | None = None
        self.sent: list[float] = []  # send time of frame `seq`, at index seq
        self.received = bytearray()  # 1 once frame `seq` was echoed
        self.last_seq = -1
        self.ready = asyncio.Event()
        self.error: str | None = None
        self.phase = (index * GOLDEN) % 1.0 * FRAME_S
        self.frame_bytes = CODEC_FRAME_BYTES[run.args.codec]

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
                    proxy=None,  # never leave loopback, whatever the environment says
                    user_agent_header=None,
                )
                first = await self.ws.recv()
        except TimeoutError:
            self.fail("connect_timeout")
            return
        except (OSError, InvalidHandshake, ConnectionClosed) as exc:
            self.fail(f"connect_{type(exc).__name__}")
            return
        if isinstance(first, str) and '"error"' in first[:20]:
            self.fail("error_event_on_connect")
            return
        self.ready.set()

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
            self.run.errors[reason] += 1

    async def send_audio(self) -> None:
        run, ws, body, index = self.run, self.ws, self.run.body, self.index
        assert ws is not None
        sent, received, lags = self.sent, self.received, run.send_lags
        t0 = _now() + self.phase
        seq = 0
        while True:
            due = t0 + seq * FRAME_S
            if due >= run.stop_at:
                return
            delay = due - _now()
            if delay > 0:
                await asyncio.sleep(delay)
            text = frame_text(body, index, seq)
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
                if not isinstance(message, str) or not message.startswith(DELTA_PREFIX):
                    if isinstance(message, str) and message.startswith('{"type":"error"'):
                        run.errors["error_event"] += 1
                    continue
                named = parse_delta(message, self.frame_bytes)
                if run.window_start <= now < run.window_end:
                    run.frames_out += len(named) or 1
                    run.messages_out += 1
                if not named:
                    run.late_or_unmatched += 1
                    continue
                for frame in named:
                    self.echoed(frame, now)
        except ConnectionClosed:
            if _now() < run.stop_at:  # not while we hang up ourselves
                self.fail("closed_by_server")

    def echoed(self, named: tuple[int, int], now: float) -> None:
        """An echo of frame `seq` of call `call` arrived at `now`: count and time it."""
        run, sent, received = self.run, self.sent, self.received
        call, seq = named
        if call != self.index or seq >= len(sent):
            run.misrouted += 1
            return
        if received[seq]:
            run.duplicates += 1
            return
        received[seq] = 1
        if seq < self.last_seq:
            run.out_of_order += 1
        else:
            self.last_seq = seq
        sent_at = sent[seq]
        if run.window_start <= sent_at < run.window_end:
            run.latencies.append(now - sent_at)
            if run.timeline is not None:
                run.timeline.append((sent_at, now - sent_at))
            run.echoed_in_window += 1
            if run.echoed_in_window == run.sent_in_window and now >= run.window_end:
                run.all_echoed.set()

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await self.ws.close()
