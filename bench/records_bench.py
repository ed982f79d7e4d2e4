"""What call records and metrics cost: server CPU per call-second with them on and off.

Same harness as `bench.relay` (the echo model in its own process, `python -m server` against
it, `bench.loadgen` streaming 20 ms frames both ways for N calls), run alternately with
`CALL_RECORDS=false METRICS=false` ("off") and with both on ("on", the defaults), a fresh server
process each time, `--rounds` times each; the medians are compared. "On" runs are checked to
have really recorded: one calls row per call. Target: on costs at most 5 % more than off.

On a shared machine the CPU time of two runs differs by more than 5 % with nothing changed, so
each "on" run is also sampled with py-spy (when installed): the share of the server's samples
whose stack is in `server/records/` or `prometheus_client` is the cost measured inside one run,
which other tenants of the machine cannot move.

`python -m bench.records_bench [--calls 100] [--seconds 15] [--rounds 3]` writes
bench/results/records-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import machine, server_dsn, stop, throwaway_database, write_results
from bench.processes import (
    MODEL_QUERY,
    run_loadgen,
    start_echo_model,
    start_server,
    wait_model_idle,
)

TARGET_PCT = 5.0
OFF = {"CALL_RECORDS": "false", "METRICS": "false"}
OURS = ("server/records/", "prometheus_client")


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def sample_share(raw: Path) -> tuple[int, int]:
    """(all samples, samples inside records or metrics code) of a py-spy raw profile."""
    total = ours = 0
    text = raw.read_text()
    raw.unlink()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        if any(part in stack for part in OURS):
            ours += int(count)
    return total, ours


async def one_run(dsn: str, model_port: int, mode: str, calls: int, seconds: float) -> dict:
    server, port = await start_server(
        dsn, model_port, extra_env=OFF if mode == "off" else {"CALL_RECORD_FLUSH_S": "15"}
    )
    try:
        conn = await asyncpg.connect(dsn)
        try:
            rows_before = await conn.fetchval("SELECT count(*) FROM calls")
            spy, raw = None, Path(tempfile.gettempdir()) / f"records-spy-{server.pid}.txt"
            if mode == "on" and (binary := py_spy()):
                spy = await asyncio.create_subprocess_exec(
                    binary, "record", "--pid", str(server.pid), "--format", "raw",
                    "--nonblocking", "--duration", str(int(seconds + 3)), "--output", str(raw),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            result = await run_loadgen(
                f"ws://127.0.0.1:{port}{MODEL_QUERY}",
                calls,
                seconds=seconds,
                pids={"server": server.pid},
            )
            if spy is not None:
                await spy.wait()
            samples = sample_share(raw) if spy is not None else None
            await wait_model_idle(model_port)
        finally:
            await conn.close()
    finally:
        await stop(server)  # SIGTERM: the last records are written before it exits
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM calls") - rows_before
    finally:
        await conn.close()
    cpu = result["cpu_s"]["server"]
    window = result["window_s"]
    return {
        "mode": mode,
        "calls": calls,
        "connected": result["connected"],
        "frames_lost": result.get("frames_lost"),
        "window_s": window,
        "server_cpu_s": cpu,
        "cpu_ms_per_call_s": round(cpu / (calls * window) * 1000, 4),
        "records_written": rows,
        "samples": None if samples is None else {"all": samples[0], "records": samples[1]},
    }


async def session(admin: str, calls: int, seconds: float, rounds: int) -> list[dict[str, Any]]:
    async with throwaway_database(admin) as dsn:
        model, model_port = await start_echo_model()
        runs = []
        try:
            for n in range(rounds):
                for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                    run = await one_run(dsn, model_port, mode, calls, seconds)
                    print(
                        f"  round {n + 1} {mode:3}: {run['cpu_ms_per_call_s']} ms CPU per"
                        f" call-second, {run['records_written']} rows, lost {run['frames_lost']}",
                        flush=True,
                    )
                    runs.append(run)
                    await asyncio.sleep(0.5)
        finally:
            await stop(model)
        return runs


def run(calls: int, seconds: float, rounds: int) -> dict[str, Any]:
    started, at_start = time.monotonic(), machine()
    with server_dsn() as admin:
        runs = asyncio.run(session(admin, calls, seconds, rounds))
    median = {
        mode: round(statistics.median(r["cpu_ms_per_call_s"] for r in runs if r["mode"] == mode), 4)
        for mode in ("off", "on")
    }
    added = round((median["on"] / median["off"] - 1) * 100, 1)
    recorded = all(r["records_written"] == calls for r in runs if r["mode"] == "on")
    sampled = [r["samples"] for r in runs if r.get("samples")]
    share = (
        round(100 * sum(s["records"] for s in sampled) / sum(s["all"] for s in sampled), 2)
        if sampled and sum(s["all"] for s in sampled)
        else None
    )
    data = {
        "machine": at_start,
        "settings": {"calls": calls, "steady_window_s": seconds, "rounds": rounds},
        "median_cpu_ms_per_call_s": median,
        "added_pct": added,
        "records_share_of_server_samples_pct": share,
        "every_on_run_recorded_every_call": recorded,
        "target": {"added_pct_max": TARGET_PCT, "met": added <= TARGET_PCT and recorded},
        "runs": runs,
        "duration_s": round(time.monotonic() - started, 1),
    }
    print(
        f"\nrecords + metrics: {median['off']} -> {median['on']} ms server CPU per call-second"
        f" at {calls} calls ({added:+} %; target <= {TARGET_PCT} %);"
        f" every call recorded: {recorded}; py-spy: {share} % of the server's samples in"
        f" records/metrics code"
    )
    print(f"written {write_results('records', data)}")
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.records_bench", description=__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.calls, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
