"""Relay benchmark: what our `/v1/realtime` relay adds to every audio frame, and what it costs.

Processes (all on 127.0.0.1, each its own process, so none steals the others' event loop):

* the offline model in echo mode, `python -m offline_model --port 0 --echo`: every
  `input_audio_buffer.append` is answered at once by one `response.output_audio.delta` carrying
  the same base64 text;
* our server, `python -m server`, with `OPENAI_BASE_URL` pointing at that echo model,
  `OPENAI_API_KEY` unset, a throwaway database, `MAX_SESSIONS=1000`, `LOG_LEVEL=warning`;
* the load generator, `python -m bench.loadgen` (see its docstring: N calls ramped up at 50/s,
  20 ms frames at 50 frames/s on a drift-free monotonic schedule, per-frame round-trip latency
  matched by a call id + sequence number in the audio, a steady window that excludes the ramp).

For each N in 1, 10, 50, 100, 200, 400 (stopping after the first N where the relay breaks:
frames lost > 0.1 %, p99 > 1 s, or calls that could not connect) the load generator runs twice
in the same session of the model and server: through the relay
(`ws://127.0.0.1:PORT/v1/realtime?model=gpt-realtime`), straight to the echo model, and through
`bench.byteproxy` (a uvloop TCP proxy that copies bytes without parsing anything: the floor any
Python relay could reach on this machine). Reported:

* latency p50/p90/p99/max per target, frames sent/lost, out of order;
* relay-added latency = relay minus direct, at p50 and p99 (a difference of percentiles of two
  runs, not a per-frame difference), in ms and as a ratio;
* server CPU-seconds per call-second: psutil CPU time (user + system) of the server process over
  the steady window / (N x window seconds); and CPU µs per relayed message: the same CPU time /
  (appends in + deltas out during the window); the byte proxy's CPU µs per message measured the
  same way, and the relay's as a multiple of it (`cpu_vs_floor`), which travels between machines
  better than microseconds do;
* server memory per idle call: before any streaming, N calls are opened that send nothing; once
  all are connected (their session.created arrived) the server's RSS is read;
  (RSS with N idle calls - RSS with 0 calls, after a 2-call warm-up) / N;
* the load generator's own CPU (% of one core), its send lag (how late frames left against their
  schedule: when it grows, the load generator is the bottleneck, not the relay), the echo model's
  CPU, and the machine (CPU count, load average at the start; per run, the share of both CPUs
  that was busy and how long the server waited for a CPU: other people's work on the same
  machine shows up there).

The G.711 run (`--codec g711` / `both`) sends 160-byte frames instead of 960-byte ones; neither
the relay nor the echo model decodes audio, so it measures the frame size, not a G.711 session.

Everything shares one 2-core machine: at high N the load generator, the echo model and the relay
compete for the same cores, so "relay-added" latency there includes CPU contention.

`python -m bench.relay [--calls 1,10,50] [--seconds 15] [--codec pcm16|g711|both]` writes
bench/results/relay-latest.json and bench/results/relay-latency.png.
`python -m bench.relay --profile 100` instead runs 100 calls through the relay while py-spy
(if installed in the venv) samples the server, and prints where its CPU time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import (
    machine,
    print_table,
    server_dsn,
    spawn_listening,
    stop,
    throwaway_database,
    write_results,
)
from bench.processes import (
    DEFAULT_SECONDS,
    GRACE_S,
    MODEL_QUERY,
    RAMP_PER_S,
    WARMUP_S,
    http_get,
    run_loadgen,
    spawn_server,
    start_echo_model,
    start_server,
    wait_model_idle,
)
from bench.profile import profile
from bench.relay_figures import (
    COLUMNS,
    LOSS_LIMIT_PCT,
    P99_LIMIT_MS,
    broke,
    relay_figures,
    relay_row_of,
)
from bench.targets import evaluate_targets, print_targets

__all__ = [  # what the other benchmarks have imported from here
    "MODEL_QUERY",
    "broke",
    "http_get",
    "print_targets",
    "run_loadgen",
    "spawn_server",
    "start_echo_model",
    "start_server",
    "wait_model_idle",
]

DEFAULT_CALLS = (1, 10, 50, 100, 200, 400)

# --- one benchmark session --------------------------------------------------------------------


async def measure_idle(
    relay_url: str, model_port: int, server_pid: int, calls_list: list[int]
) -> dict[int, dict[str, Any]]:
    """RSS with N idle calls minus RSS with none, per call; on a server that has not streamed."""
    server = psutil.Process(server_pid)
    # Warm-up: the first call imports the SDK's realtime modules and fills caches.
    await run_loadgen(relay_url, 2, seconds=1.0, warmup=0.2)
    await wait_model_idle(model_port)
    await asyncio.sleep(1.0)
    base = server.memory_info().rss
    out: dict[int, dict[str, Any]] = {}
    for calls in calls_list:
        result = await run_loadgen(relay_url, calls, idle=True, pids={"server": server_pid})
        rss = result["rss_bytes"].get("server")
        connected = result["connected"]
        per_call = (rss - base) / connected / 1024 if rss and connected else None
        out[calls] = {
            "calls": calls,
            "connected": connected,
            "rss_base_mb": round(base / 2**20, 1),
            "rss_mb": round(rss / 2**20, 1) if rss else None,
            "kb_per_call": round(per_call, 1) if per_call is not None else None,
        }
        await wait_model_idle(model_port)
        await asyncio.sleep(0.5)
    return out


Servers = dict[str, tuple[int, int]]  # target name -> (pid, port): ours, then baselines
Baseline = tuple[Path, dict[str, str]]  # a source tree, and settings for its server


async def relay_session(
    admin_dsn: str,
    calls_list: list[int],
    seconds: float,
    codecs: list[str],
    baselines: dict[str, Baseline] | None = None,
    keep_going: bool = False,
) -> dict[str, Any]:
    """The echo model, the byte proxy, our server and one server per baseline tree."""
    async with throwaway_database(admin_dsn) as dsn:
        model, model_port = await start_echo_model()
        proxy = None
        started: list[asyncio.subprocess.Process] = []
        try:
            proxy, proxy_port = await spawn_listening(
                "the byte proxy", "-m", "bench.byteproxy", "--upstream", str(model_port)
            )
            servers: Servers = {}
            for name, baseline in {"relay": None, **(baselines or {})}.items():
                target = name if baseline is None else f"relay@{name}"
                process, port = await (
                    start_server(dsn, model_port)
                    if baseline is None
                    else start_server(dsn, model_port, root=baseline[0], extra_env=baseline[1])
                )
                started.append(process)
                servers[target] = (process.pid, port)
            floor = (proxy.pid, proxy_port)
            return await _measure(
                servers, model.pid, model_port, floor, calls_list, seconds, codecs, keep_going
            )
        finally:
            for process in started:
                await stop(process)
            if proxy is not None:
                await stop(proxy)
            await stop(model)


async def _measure(
    servers: Servers,
    model_pid: int,
    model_port: int,
    floor: tuple[int, int],
    calls_list: list[int],
    seconds: float,
    codecs: list[str],
    keep_going: bool = False,
) -> dict[str, Any]:
    server_pid, port = servers["relay"]
    relay_url = f"ws://127.0.0.1:{port}{MODEL_QUERY}"
    direct_url = f"ws://127.0.0.1:{model_port}{MODEL_QUERY}"
    proxy_pid, proxy_port = floor
    floor_url = f"ws://127.0.0.1:{proxy_port}{MODEL_QUERY}"
    print(f"relay bench: servers {servers}, echo model pid {model_pid}", flush=True)
    idle = await measure_idle(relay_url, model_port, server_pid, calls_list)
    for calls, figures in idle.items():
        print(f"  idle {calls:4d} calls: {figures['kb_per_call']} KB per call", flush=True)
    for name, (_pid, other_port) in servers.items():  # warm every server up the same way
        if name != "relay":
            await run_loadgen(f"ws://127.0.0.1:{other_port}{MODEL_QUERY}", 2, seconds=1.0)
            await wait_model_idle(model_port)
    rows: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    broke_at: dict[str, dict[str, Any]] = {}
    for codec in codecs:
        for index, calls in enumerate(calls_list):
            relays = [
                (name, f"ws://127.0.0.1:{p}{MODEL_QUERY}", {"server": pid, "model": model_pid})
                for name, (pid, p) in servers.items()
            ]
            if index % 2:  # alternate who goes first: drift on a shared machine evens out
                relays.reverse()
            runs = {}
            plans = [
                *relays,
                ("direct", direct_url, {"model": model_pid}),
                ("floor", floor_url, {"proxy": proxy_pid, "model": model_pid}),
            ]
            for target, url, pids in plans:
                result = await run_loadgen(url, calls, seconds=seconds, codec=codec, pids=pids)
                runs[target] = result
                raw.append({"codec": codec, "target": target, **result})
                await wait_model_idle(model_port)
                await asyncio.sleep(0.5)
            for name in servers:
                row = relay_row_of(codec, calls, name, runs[name])
                kb = idle[calls]["kb_per_call"] if name == "relay" else None
                row.update(relay_figures(runs[name], runs["direct"], runs["floor"], calls, kb))
                rows.append(row)
                print(
                    f"  {codec} {calls:4d} calls {name}: p50/p99"
                    f" {row['p50_ms']}/{row['p99_ms']} ms (added p99 {row.get('added_p99_ms')}),"
                    f" lost {row['frames_lost']}, server CPU {row.get('server_cpu_pct')}%,"
                    f" {row.get('cpu_us_per_msg')} us/msg"
                    f" ({row.get('cpu_vs_floor')}x the byte proxy's),"
                    f" machine busy {row.get('machine_busy_pct')}%",
                    flush=True,
                )
            rows += [relay_row_of(codec, calls, t, runs[t]) for t in ("direct", "floor")]
            relay_row = next(r for r in rows[-2 - len(servers) :] if r["target"] == "relay")
            if relay_row["broke"]:
                broke_at[codec] = {"calls": calls, "why": relay_row["broke"]}
                print(f"  {codec}: the relay broke at {calls} calls ({relay_row['broke']})")
                if not keep_going:  # else: on, for the ratios (a shared machine breaks it too)
                    break
    return {"rows": rows, "idle": list(idle.values()), "broke_at": broke_at, "raw": raw}


# --- entry points -----------------------------------------------------------------------------


def run(
    calls_list: list[int],
    seconds: float,
    codecs: list[str],
    baselines: dict[str, Baseline] | None = None,
    keep_going: bool = False,
) -> dict[str, Any]:
    started, at_start = time.monotonic(), machine()  # load average before our own load
    with server_dsn() as admin:
        measured = asyncio.run(
            relay_session(admin, calls_list, seconds, codecs, baselines, keep_going)
        )
    rows = measured["rows"]
    targets = evaluate_targets(rows, measured["idle"])
    data = {
        "machine": at_start,
        "settings": {
            "calls": calls_list,
            "steady_window_s": seconds,
            "codecs": codecs,
            "baselines": {name: [str(b[0]), b[1]] for name, b in (baselines or {}).items()},
            "ramp_calls_per_s": RAMP_PER_S,
            "warmup_s": WARMUP_S,
            "grace_s": GRACE_S,
            "frame_ms": 20,
            "breaks_when": f"loss > {LOSS_LIMIT_PCT}%, p99 > {P99_LIMIT_MS:g} ms, or a failed call",
            "g711_note": "160-byte frames through the same relay and echo model: frame size only, "
            "not a G.711 codec session",
        },
        "rows": rows,
        "idle_memory": measured["idle"],
        "broke_at": measured["broke_at"],
        "targets": targets,
        "duration_s": round(time.monotonic() - started, 1),
        "runs": measured["raw"],
    }
    print_table(
        "Relay: round trip per 20 ms frame, through the relay vs straight to the echo model",
        rows,
        COLUMNS,
    )
    print_targets("Relay targets", targets)
    print(f"\nwritten {write_results('relay', data)}")
    from bench.plot import plot_relay_latency

    print(f"written {plot_relay_latency(data)}")
    return data


def parse_calls(text: str) -> list[int]:
    calls = sorted({int(x) for x in text.split(",") if x.strip()})
    if not calls or calls[0] < 1 or calls[-1] > 2000:
        raise argparse.ArgumentTypeError("calls must be 1..2000")
    return calls


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls", type=parse_calls, default=list(DEFAULT_CALLS), help="e.g. 1,10,50"
    )
    parser.add_argument(
        "--seconds", type=float, default=DEFAULT_SECONDS, help="steady window per run"
    )
    parser.add_argument("--codec", choices=["pcm16", "g711", "both"], default="pcm16")
    parser.add_argument(
        "--baseline",
        type=parse_baseline,
        action="append",
        default=[],
        metavar="NAME=PATH[,KEY=VALUE...]",
        help="also run the server of another source tree (an earlier commit, unpacked), with "
        "these settings, interleaved with ours in the same run; repeatable",
    )


def add_keep_going(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="measure every N even after one broke (the ratios still compare)",
    )


def parse_baseline(text: str) -> tuple[str, Baseline]:
    name, _, rest = text.partition("=")
    path, *settings = rest.split(",")
    root = Path(path).resolve()
    if not name or not (root / "server" / "__main__.py").exists():
        raise argparse.ArgumentTypeError("expected NAME=PATH of a source tree with server/")
    env = dict(setting.split("=", 1) for setting in settings if "=" in setting)
    return name, (root, env)


def codecs_of(choice: str) -> list[str]:
    return ["pcm16", "g711"] if choice == "both" else [choice]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.relay", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    add_keep_going(parser)
    parser.add_argument(
        "--profile", type=int, metavar="CALLS", help="profile the server under CALLS calls"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be 1..300")
    if args.profile:
        with server_dsn() as admin:
            summary = asyncio.run(
                profile(admin, args.profile, args.seconds, codecs_of(args.codec)[0])
            )
        print(json.dumps(summary, indent=2))
        return
    run(args.calls, args.seconds, codecs_of(args.codec), dict(args.baseline), args.keep_going)


if __name__ == "__main__":
    main()
