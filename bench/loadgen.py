"""Realtime load generator: N concurrent calls streaming microphone audio, run as its own process.

`python -m bench.loadgen --url ws://127.0.0.1:PORT/v1/realtime?model=gpt-realtime --calls 100
--seconds 15 --codec pcm16 [--pid server=1234 --pid model=1235]` prints ONE JSON line on stdout.

What one run does:

* Ramp-up: calls are opened gradually (`--ramp` per second, default 50). A call counts as
  connected when its first server event (`session.created`) arrives; only then does it start to
  stream. Calls open at 50/s all start on the same 20 ms phase, which would make every call send
  in the same instant, so each call's frame clock is offset by a golden-ratio fraction of 20 ms
  (evenly spread, deterministic), as independent callers would be.
* Audio: each call sends one `input_audio_buffer.append` ("type" first, so the relay's fast path
  applies) every 20 ms, 50 frames/s, scheduled against `time.perf_counter()` (monotonic): frame k
  of a call is due at t0 + k * 20 ms, so a late wake-up never shifts later frames (no drift); how
  late frames actually go out is reported as `send_lag`.
  `pcm16`: 24 kHz PCM16, 960 bytes/frame = 1,280 base64 characters. `g711`: 160 bytes/frame =
  216 base64 characters. The relay and the echo model never decode audio, so the g711 run
  measures the effect of the FRAME SIZE only; it is not a G.711 codec session.
* Matching: the first 12 bytes of every frame's audio are `b"BNCH"`, the call index and the
  frame's sequence number (big-endian uint32s). 12 bytes are exactly 16 base64 characters, so the
  echo model's `response.output_audio.delta`, which carries the same base64 text, tells which call
  and which frame it answers. Latency = send -> matching delta received, per frame.
* Steady window: once every call is connected (or has failed), `--warmup` seconds pass, then the
  window of `--seconds` starts. Only frames SENT inside the window are measured; the ramp and the
  warm-up are excluded. Sending stops at the end of the window; echoes are awaited for up to
  `--grace` seconds more. Frames sent in the window and never echoed by then are `lost`; echoes
  whose sequence number is lower than one already received on that call are `out_of_order`; an
  echo naming another call is `misrouted`.
* CPU: for every `--pid NAME=PID` the process's CPU seconds (user + system) over the window, read
  with psutil; and this load generator's own CPU seconds. `frames_in` (appends sent) and
  `frames_out` (deltas received) count the messages during the window, so a caller can compute
  CPU per relayed message. Also over the window (Linux /proc): `machine_busy_pct`, the share of
  all CPUs that was busy (anyone's processes, not only ours), and `run_queue_wait_pct`, how long
  each watched process (and the load generator) was runnable but waiting for a CPU: together they
  tell a slow relay from a starved one. `--timeline-ms 100` adds the worst latency of each 100 ms
  of the window (to see pauses such as garbage collections).
* `--idle`: open the calls, send nothing, wait until all are connected plus `--settle` seconds,
  then report the RSS of every `--pid` (for memory per idle call) and hang up.

`--twilio` makes every call Twilio's side of a `/twilio/media-stream` instead (same schedule,
window and matching; `bench.phoneload` says how).

Non-delta events (`session.created`, `session.updated`, ...) are skipped. Uses websockets' asyncio
client (`max_queue=None`, `compression=None`, 16 MiB `max_size`, no client pings) on uvloop when
it is installed. Every loop is bounded: connects time out, the window is fixed, the grace period
is fixed, closing is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import math
import os
import resource
import struct
import sys
import time
from collections import Counter
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.common import percentile, summary_ms

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


def parse_delta(text: str) -> tuple[int, int] | None:
    """(call index, sequence number) named by an echoed delta, else None."""
    at = text.find(DELTA_KEY)
    if at < 0:
        return None
    at += len(DELTA_KEY)
    try:
        magic, call, seq = HEADER.unpack(base64.b64decode(text[at : at + HEADER_CHARS]))
    except (binascii.Error, struct.error, ValueError):
        return None
    if magic != MAGIC:
        return None
    return call, seq


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
        self.frames_out = 0  # deltas received during the window
        self.out_of_order = 0
        self.duplicates = 0
        self.misrouted = 0
        self.late_or_unmatched = 0
        self.errors: Counter[str] = Counter()
        self.calls: list[Call] = []
        self.all_echoed = asyncio.Event()
        self.timeline: list[tuple[float, float]] | None = [] if args.timeline_ms else None


class Call:
    __slots__ = ("error", "index", "last_seq", "phase", "ready", "received", "run", "sent", "ws")

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
                if run.window_start <= now < run.window_end:
                    run.frames_out += 1
                named = parse_delta(message)
                if named is None:
                    run.late_or_unmatched += 1
                    continue
                self.echoed(named, now)
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


def _cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds of each watched process."""
    out = {}
    for name, process in processes.items():
        try:
            times = process.cpu_times()
            out[name] = (times.user, times.system)
        except psutil.Error:
            out[name] = (math.nan, math.nan)
    return out


def _machine_ticks() -> list[int] | None:
    """The aggregate `cpu` line of /proc/stat (Linux), else None."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def _busy_pct(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of all CPUs' time not idle or waiting on I/O between two /proc/stat reads."""
    if not before or not after:
        return None
    delta = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(delta[:8])  # user nice system idle iowait irq softirq steal
    return round(100 * (total - delta[3] - delta[4]) / total, 1) if total else None


def _run_queue_wait(pids: dict[str, int]) -> dict[str, float]:
    """Seconds each process spent runnable but waiting for a CPU (/proc/PID/schedstat)."""
    out = {}
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/schedstat") as stat:
                out[name] = int(stat.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            pass
    return out


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _open_all(run: Run, extra: list[asyncio.Task[None]], stream: bool) -> float:
    """Open every call at the ramp rate; start streaming each as it connects. Returns ramp time."""
    args = run.args
    start = _now()
    kind: type[Call] = Call
    if args.twilio:
        from bench.phoneload import PhoneCall

        kind = PhoneCall
    run.calls = [kind(run, i) for i in range(args.calls)]

    async def one(call: Call) -> None:
        await call.open(start + call.index / args.ramp)
        if call.ready.is_set() and call.ws is not None:
            extra.append(asyncio.create_task(call.receive()))
            if stream:
                extra.append(asyncio.create_task(call.send_audio()))

    await asyncio.gather(*(one(call) for call in run.calls))
    return _now() - start


async def stream_run(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args)
    watched = {name: psutil.Process(pid) for name, pid in args.pid}
    tasks: list[asyncio.Task[None]] = []
    ramp_s = await _open_all(run, tasks, stream=True)
    connected = sum(call.ready.is_set() for call in run.calls)

    run.window_start = _now() + args.warmup
    run.window_end = run.stop_at = run.window_start + args.seconds
    pids = {name: process.pid for name, process in watched.items()} | {"loadgen": os.getpid()}
    await _sleep_until(run.window_start)
    cpu0, own0, t0 = _cpu_seconds(watched), _own_cpu(), _now()
    ticks0, wait0 = _machine_ticks(), _run_queue_wait(pids)
    await _sleep_until(run.window_end)
    # From here on no frame can count as sent in the window: a sender that has not run yet
    # reads a clock past window_end. So `sent_in_window` is final and the grace wait is exact.
    cpu1, own1, t1 = _cpu_seconds(watched), _own_cpu(), _now()
    ticks1, wait1 = _machine_ticks(), _run_queue_wait(pids)

    if run.echoed_in_window < run.sent_in_window:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.grace):
                await run.all_echoed.wait()
    await asyncio.gather(*(call.close() for call in run.calls))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    window = t1 - t0
    sent, echoed = run.sent_in_window, run.echoed_in_window
    result: dict[str, Any] = {
        "mode": "stream",
        "url": args.url,
        "codec": args.codec,
        "frame_bytes": CODEC_FRAME_BYTES[args.codec],
        "frame_chars": len(frame_text(run.body, 0, 0)),
        "calls": args.calls,
        "connected": connected,
        "ramp_s": round(ramp_s, 2),
        "window_s": round(window, 3),
        "frames_sent": sent,
        "frames_echoed": echoed,
        "frames_lost": sent - echoed,
        "loss_pct": round(100 * (sent - echoed) / sent, 4) if sent else None,
        "out_of_order": run.out_of_order,
        "duplicates": run.duplicates,
        "misrouted": run.misrouted,
        "unmatched": run.late_or_unmatched,
        "frames_in": run.frames_in,
        "frames_out": run.frames_out,
        "latency": summary_ms(run.latencies) if run.latencies else None,
        "send_lag": _lag_summary(run.send_lags),
        "cpu_s": {name: round(sum(cpu1[name]) - sum(cpu0[name]), 4) for name in cpu0},
        "cpu_system_s": {name: round(cpu1[name][1] - cpu0[name][1], 4) for name in cpu0},
        "loadgen_cpu_s": round(own1 - own0, 4),
        "loadgen_cpu_pct": round(100 * (own1 - own0) / window, 1) if window > 0 else None,
        "errors": dict(run.errors),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "machine_busy_pct": _busy_pct(ticks0, ticks1),
        "run_queue_wait_pct": {
            name: round(100 * (wait1[name] - wait0[name]) / window, 1)
            for name in wait0
            if name in wait1 and window > 0
        },
    }
    if args.twilio:
        from bench.phoneload import figures

        result.update(figures(run, window))
    if run.timeline is not None:
        result["timeline_max_ms"] = _timeline(run.timeline, t0, args.timeline_ms / 1000)
    return result


def _timeline(points: list[tuple[float, float]], t0: float, bucket_s: float) -> list[float]:
    """Worst latency (ms) of the frames sent in each bucket of the window, in order."""
    worst: dict[int, float] = {}
    for sent_at, latency in points:
        key = int((sent_at - t0) / bucket_s)
        worst[key] = max(worst.get(key, 0.0), latency)
    return [round(worst.get(k, 0.0) * 1000, 1) for k in range(max(worst, default=-1) + 1)]


async def _sleep_until(when: float) -> None:
    """Sleep until perf_counter() >= when (uvloop timers have 1 ms granularity, may wake early)."""
    for _ in range(1000):  # bounded: a few rounds at most
        delay = when - _now()
        if delay <= 0:
            return
        await asyncio.sleep(delay if delay > 0.002 else 0.0005)


def _lag_summary(lags: list[float]) -> dict[str, float] | None:
    if not lags:
        return None
    return {
        "p50_ms": round(percentile(lags, 50) * 1000, 3),
        "p99_ms": round(percentile(lags, 99) * 1000, 3),
        "max_ms": round(max(lags) * 1000, 3),
    }


async def idle_run(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args)
    watched = {name: psutil.Process(pid) for name, pid in args.pid}
    tasks: list[asyncio.Task[None]] = []
    ramp_s = await _open_all(run, tasks, stream=False)
    connected = sum(call.ready.is_set() for call in run.calls)
    await asyncio.sleep(args.settle)
    rss = {}
    for name, process in watched.items():
        with contextlib.suppress(psutil.Error):
            rss[name] = process.memory_info().rss
    run.stop_at = 0.0  # closing from here on is ours, not the server's
    await asyncio.gather(*(call.close() for call in run.calls))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "mode": "idle",
        "url": args.url,
        "calls": args.calls,
        "connected": connected,
        "ramp_s": round(ramp_s, 2),
        "rss_bytes": rss,
        "errors": dict(run.errors),
    }


def _pid(value: str) -> tuple[str, int]:
    name, _, pid = value.partition("=")
    if not pid:
        raise argparse.ArgumentTypeError("use NAME=PID")
    return name, int(pid)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/v1/realtime?model=...")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0, help="steady window")
    parser.add_argument("--codec", choices=sorted(CODEC_FRAME_BYTES), default="pcm16")
    parser.add_argument("--ramp", type=float, default=50.0, help="calls opened per second")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds after ramp-up")
    parser.add_argument("--grace", type=float, default=2.0, help="seconds to wait for echoes")
    parser.add_argument("--connect-timeout", type=float, default=15.0)
    parser.add_argument("--idle", action="store_true", help="connect, send nothing, report RSS")
    parser.add_argument(
        "--twilio", action="store_true", help="speak Twilio Media Streams (see bench.phoneload)"
    )
    parser.add_argument(
        "--frame-ms", type=int, default=20, choices=(20, 40, 60), help="--twilio: ms per frame"
    )
    parser.add_argument(
        "--timeline-ms", type=int, default=0, help="also report the worst latency per bucket"
    )
    parser.add_argument("--settle", type=float, default=1.0, help="idle: seconds before RSS")
    parser.add_argument(
        "--pid", type=_pid, action="append", default=[], help="NAME=PID to watch (repeatable)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 5000 or not 0 < args.seconds <= 600:
        parser.error("--calls must be 1..5000 and --seconds 0..600")
    return args


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.calls * 2 + 256))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    coro = idle_run(args) if args.idle else stream_run(args)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
        result["loop"] = "asyncio"
    else:
        result = uvloop.run(coro)
        result["loop"] = "uvloop"
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
