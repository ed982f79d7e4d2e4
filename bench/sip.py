"""SIP benchmark: what a phone call costs our server when its audio goes to OpenAI, not through us.

Server CPU per call-second for N SIP calls (the sideband: control events only) against N
relayed calls (every 20 ms frame in and out through the relay), on the same machine.

* SIP: our server, `python -m server` (its own process), answers calls that the offline model
  (in this process, playing OpenAI and the carrier) places by signed webhook. Once every call is
  answered and greeted, a steady window of `--seconds` starts; in it each caller speaks every
  `--turn-every` seconds (a typed turn that asks for a table: the model calls
  `check_availability` on the sideband, our server runs it against PostgreSQL, the model
  answers). The sideband carries what OpenAI would send: response, transcript and tool events,
  no audio. Then every caller hangs up.
* Relayed: the relay benchmark's load generator (`bench.loadgen`, G.711-sized 160-byte frames at
  50 frames/s each way, a phone call's rate) through another `python -m server` to the echo model.

Reported per N: server CPU-seconds per call-second for each path and their ratio; for SIP also
the sideband events per call-second and CPU µs per event. Both server processes are measured
with psutil over their steady windows only (the ramp and greetings excluded).

`python -m bench.sip [--calls 1,10,50] [--seconds 10] [--turn-every 4]` writes
bench/results/sip-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import psutil

import offline_model
from bench.common import (
    clean_env,
    free_port,
    machine,
    print_table,
    server_dsn,
    stop,
    throwaway_database,
    write_results,
)
from bench.processes import run_loadgen, spawn_server, start_echo_model, start_server
from bench.relay import parse_calls
from offline_model.sip import SipCall, new_secret

DEFAULT_CALLS = (1, 10, 50)
DEFAULT_SECONDS = 10.0
TURN_EVERY_S = 4.0
ANSWER_WITHIN_S = 60.0
TURN = "Do you have any tables for 2 tomorrow at 7pm?"
COLUMNS = [
    "calls",
    "sip_cpu_s_per_call_s",
    "relay_cpu_s_per_call_s",
    "relay_vs_sip",
    "sip_events_per_call_s",
    "sip_cpu_us_per_event",
    "sip_turns",
    "sip_tool_calls",
]


async def start_sip_server(
    dsn: str, model: offline_model.OfflineModel, secret: str
) -> tuple[asyncio.subprocess.Process, int]:
    """`python -m server` with the SIP webhook on and the offline model as OpenAI."""
    port = free_port()
    env = clean_env(
        OPENAI_BASE_URL=model.sip.url,
        OPENAI_WEBSOCKET_BASE_URL=model.url,
        OPENAI_WEBHOOK_SECRET=secret,
        DATABASE_URL=dsn,
        MAX_SESSIONS="1000",
        LOG_LEVEL="warning",
        HOST="127.0.0.1",
        PORT=str(port),
    )
    return await spawn_server(env, port)


def _greeted(call: SipCall) -> bool:
    return call.sidebands > 0 and "response.done" in call.server_events and call.quiet


async def _caller(
    model: offline_model.OfflineModel, call: SipCall, first: float, until: float, every: float
) -> int:
    """Speak at `first`, then every `every` seconds until `until` (monotonic); count turns."""
    turns = 0
    next_turn = first
    while next_turn < until:
        await asyncio.sleep(max(0.0, next_turn - time.monotonic()))
        if call.quiet:  # never talk over the host (the offline model refuses a second response)
            model.sip.say(call.call_id, TURN)
            turns += 1
        next_turn += every
    return turns


async def measure_sip(
    model: offline_model.OfflineModel,
    server_pid: int,
    port: int,
    secret: str,
    calls: int,
    seconds: float,
    every: float,
) -> dict[str, Any]:
    webhook = f"http://127.0.0.1:{port}/openai/webhook"
    placed = await asyncio.gather(*(model.sip.place_call(webhook, secret) for _ in range(calls)))
    sip_calls = [call for call, status in placed if status == 200]
    async with asyncio.timeout(ANSWER_WITHIN_S):
        await asyncio.gather(*(call.wait(_greeted) for call in sip_calls))
    server = psutil.Process(server_pid)
    events_before = sum(len(c.server_events) + len(c.client_events) for c in sip_calls)
    cpu_before = sum(server.cpu_times()[:2])
    started = time.monotonic()
    # Callers start spread over one turn interval, as independent callers would.
    until = started + seconds
    turns = await asyncio.gather(
        *(
            _caller(model, call, started + every * i / len(sip_calls), until, every)
            for i, call in enumerate(sip_calls)
        )
    )
    await asyncio.sleep(max(0.0, until - time.monotonic()))  # the window lasts `seconds`
    window = time.monotonic() - started
    cpu = sum(server.cpu_times()[:2]) - cpu_before
    events = sum(len(c.server_events) + len(c.client_events) for c in sip_calls) - events_before
    tool_calls = sum(c.client_events.count("conversation.item.create") for c in sip_calls)
    for call in sip_calls:
        await model.sip.hang_up(call.call_id)
    async with asyncio.timeout(ANSWER_WITHIN_S):
        await asyncio.gather(*(call.wait(lambda c: not c.sockets) for call in sip_calls))
    return {
        "calls": calls,
        "answered": len(sip_calls),
        "window_s": round(window, 3),
        "cpu_s": round(cpu, 4),
        "cpu_s_per_call_s": round(cpu / (len(sip_calls) * window), 5),
        "events": events,
        "events_per_call_s": round(events / (len(sip_calls) * window), 1),
        "cpu_us_per_event": round(cpu / events * 1e6, 1) if events else None,
        "turns": sum(turns),
        "tool_calls": tool_calls,
    }


async def session(admin_dsn: str, calls_list: list[int], seconds: float, every: float) -> Any:
    sip_runs: dict[int, dict[str, Any]] = {}
    relay_runs: dict[int, dict[str, Any]] = {}
    secret = new_secret()
    async with throwaway_database(admin_dsn) as dsn:
        async with offline_model.OfflineModel() as model:
            server, port = await start_sip_server(dsn, model, secret)
            try:
                await measure_sip(model, server.pid, port, secret, 1, 1.0, every)  # warm-up
                for calls in calls_list:
                    sip_runs[calls] = await measure_sip(
                        model, server.pid, port, secret, calls, seconds, every
                    )
                    print(f"sip {calls}: {sip_runs[calls]}", flush=True)
            finally:
                await stop(server)
        echo, echo_port = await start_echo_model()
        try:
            relay_server, relay_port = await start_server(dsn, echo_port)
            try:
                url = f"ws://127.0.0.1:{relay_port}/v1/realtime?model=gpt-realtime"
                await run_loadgen(url, 2, seconds=1.0, warmup=0.2)  # warm-up
                for calls in calls_list:
                    result = await run_loadgen(
                        url, calls, seconds=seconds, codec="g711", pids={"server": relay_server.pid}
                    )
                    cpu, window = result["cpu_s"]["server"], result["window_s"]
                    relay_runs[calls] = {
                        "calls": calls,
                        "connected": result["connected"],
                        "window_s": window,
                        "cpu_s": cpu,
                        "cpu_s_per_call_s": round(cpu / (calls * window), 5),
                        "frames_in": result["frames_in"],
                        "frames_out": result["frames_out"],
                        "loss_pct": result["loss_pct"],
                    }
                    print(f"relay {calls}: {relay_runs[calls]}", flush=True)
            finally:
                await stop(relay_server)
        finally:
            await stop(echo)
    return sip_runs, relay_runs


def run(calls_list: list[int], seconds: float, every: float) -> dict[str, Any]:
    started, at_start = time.monotonic(), machine()
    with server_dsn() as admin:
        sip_runs, relay_runs = asyncio.run(session(admin, calls_list, seconds, every))
    rows = []
    for calls in calls_list:
        sip, relay = sip_runs[calls], relay_runs[calls]
        rows.append(
            {
                "calls": calls,
                "sip_cpu_s_per_call_s": sip["cpu_s_per_call_s"],
                "relay_cpu_s_per_call_s": relay["cpu_s_per_call_s"],
                "relay_vs_sip": round(relay["cpu_s_per_call_s"] / sip["cpu_s_per_call_s"], 1)
                if sip["cpu_s_per_call_s"]
                else None,
                "sip_events_per_call_s": sip["events_per_call_s"],
                "sip_cpu_us_per_event": sip["cpu_us_per_event"],
                "sip_turns": sip["turns"],
                "sip_tool_calls": sip["tool_calls"],
            }
        )
    data = {
        "machine": at_start,
        "settings": {
            "calls": calls_list,
            "steady_window_s": seconds,
            "sip_turn_every_s": every,
            "sip_turn": TURN,
            "relay_codec": "g711 (160-byte frames at 50/s each way)",
        },
        "rows": rows,
        "sip_runs": sip_runs,
        "relay_runs": relay_runs,
        "duration_s": round(time.monotonic() - started, 1),
    }
    print_table("Server CPU per call-second: SIP sideband vs relayed audio", rows, COLUMNS)
    print(f"\nwritten {write_results('sip', data)}")
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sip", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=parse_calls, default=list(DEFAULT_CALLS))
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--turn-every", type=float, default=TURN_EVERY_S)
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 300 or args.turn_every <= 0:
        parser.error("--seconds must be 1..300 and --turn-every positive")
    run(args.calls, args.seconds, args.turn_every)


if __name__ == "__main__":
    main()
