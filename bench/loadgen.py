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
import contextlib
import json
import math
import os
import resource
import sys
from typing import Any

import psutil

from bench.calls import (
    CODEC_FRAME_BYTES,
    Call,
    Run,
    _now,
    frame_text,
)
from bench.common import percentile, summary_ms
from bench.phoneload import PhoneCall, figures


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
        "messages_out": run.messages_out,
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
