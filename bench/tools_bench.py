"""Tool-call benchmark: how long the relay takes to answer the model's function call.

Measured: the time from the model SENDING `response.function_call_arguments.done` to the relay's
`conversation.item.create` (`function_call_output`, same call_id) ARRIVING back at the model, for
`make_reservation` and `lookup_reservation`, with 1 and 100 concurrent calls. It includes the
relay parsing the event, the tool (argument checks + PostgreSQL through the server's pool, a
throwaway database) and serialising the output; both timestamps are `time.perf_counter()` in the
same (fake model) process, so no clocks are compared across processes.

How:

* A purpose-made fake model (`bench/tool_model.py`, started as this module with `--fake-model`
  in its own process, uvloop when installed) speaks just enough of the GA Realtime protocol to
  call a tool and time the answer (its docstring says which events). Arguments are valid: a
  unique SG mobile number per booking (`+6581` + 6 digits), a date a week ahead, 19:00, party of
  2; lookups use numbers booked earlier in the same run (found path).
* Our server (`python -m server`, its own process) points at it with `OPENAI_BASE_URL`.
* The callers (`bench/tool_callers.py`) run in this process: each opens a call through the
  relay, streams PCM16 audio in real time (20 ms frames, 50/s; `--no-audio` to switch off) and,
  `--rounds` times, sends a user
  text item + `response.create`, then waits for the round's two `session.stats` events (one per
  response.done), the second of which carries the tool's own duration (`duration_ms`, measured
  by the tool registry) -- reported as `handler`, so round trip minus handler is the relay's part.
  Rounds are paced (`--interval` seconds apart per call, calls phase-spread over the interval):
  1 call: 100 rounds 0.1 s apart; 100 calls: 10 rounds each 1 s apart, i.e. ~100 tool calls/s.

`python -m bench.tools_bench [--tool-calls 1,100]` writes bench/results/tools-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    machine,
    print_table,
    server_dsn,
    spawn_listening,
    stop,
    throwaway_database,
    write_results,
)
from bench.processes import MODEL_QUERY, start_server, wait_model_idle
from bench.relay import parse_calls
from bench.targets import print_targets
from bench.tool_callers import run_callers
from bench.tool_model import serve_fake_model

TOOLS = ("make_reservation", "lookup_reservation")
DEFAULT_CALLS = (1, 100)
TARGET_P99_MS = 5.0


async def start_fake_model() -> tuple[asyncio.subprocess.Process, int]:
    return await spawn_listening("the fake model", "-m", "bench.tools_bench", "--fake-model")


async def tools_session(admin: str, calls_list: list[int], audio: bool) -> list[dict[str, Any]]:
    rows = []
    async with throwaway_database(admin) as dsn:
        model, model_port = await start_fake_model()
        try:
            server, port = await start_server(dsn, model_port)
            try:
                url = f"ws://127.0.0.1:{port}{MODEL_QUERY}"
                for tool in TOOLS:  # make first: lookups find what it booked
                    for calls in calls_list:
                        rounds, interval = (100, 0.1) if calls == 1 else (10, 1.0)
                        row = await run_callers(
                            url, model_port, tool, calls, rounds, interval, audio
                        )
                        rows.append(row)
                        print(
                            f"  {tool} x{calls}: p50 {row.get('p50_ms')} ms,"
                            f" p99 {row.get('p99_ms')} ms, n {row.get('n')}",
                            flush=True,
                        )
                        await wait_model_idle(model_port)
            finally:
                await stop(server)
        finally:
            await stop(model)
    return rows


def evaluate_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for tool in TOOLS:
        row = next((r for r in rows if r["tool"] == tool and r["calls"] == 100), None)
        value = row.get("p99_ms") if row else None
        out[f"{tool}_round_trip_p99_ms_at_100"] = {
            "target": TARGET_P99_MS,
            "value": value,
            "met": None if value is None else value <= TARGET_P99_MS,
            "how": "args.done sent -> function_call_output received, at the model; <= target",
        }
    return out


COLUMNS = [
    "tool",
    "calls",
    "n",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "handler_p50_ms",
    "handler_p99_ms",
    "relay_part_p50_ms",
    "tool_calls_per_s",
    "outcomes",
    "failures",
]


def run(calls_list: list[int], audio: bool = True) -> dict[str, Any]:
    started, at_start = time.monotonic(), machine()  # load average before our own load
    with server_dsn() as admin:
        rows = asyncio.run(tools_session(admin, calls_list, audio))
    targets = evaluate_targets(rows)
    data = {
        "machine": at_start,
        "settings": {
            "calls": calls_list,
            "audio_while_calling": audio,
            "pacing": "1 call: 100 rounds 0.1 s apart; N calls: 10 rounds 1 s apart each, "
            "phase-spread",
        },
        "rows": rows,
        "targets": targets,
        "duration_s": round(time.monotonic() - started, 1),
    }
    print_table(
        "Tools: model's function_call_arguments.done -> relay's function_call_output, at the model",
        rows,
        COLUMNS,
    )
    print_targets("Tool targets", targets)
    print(f"\nwritten {write_results('tools', data)}")
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tools_bench", description=__doc__)
    parser.add_argument("--fake-model", action="store_true", help="run only the fake model")
    parser.add_argument("--port", type=int, default=0, help="fake model port")
    parser.add_argument("--tool-calls", default="1,100", help="concurrent calls, e.g. 1,100")
    parser.add_argument("--no-audio", action="store_true", help="callers send no audio")
    args = parser.parse_args(argv)
    if args.fake_model:
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve_fake_model(args.port))
        else:
            uvloop.run(serve_fake_model(args.port))
        return
    run(parse_calls(args.tool_calls), audio=not args.no_audio)


if __name__ == "__main__":
    main()
