"""Where the server's CPU goes under load: py-spy samples, summarised by package and function.

`python -m bench.relay --profile 100` runs 100 calls through the relay while py-spy (installed
with the `bench` extra) samples the server, and prints self and inclusive shares.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import stop, throwaway_database
from bench.processes import (
    MODEL_QUERY,
    RAMP_PER_S,
    WARMUP_S,
    run_loadgen,
    start_echo_model,
    start_server,
    wait_model_idle,
)


def _frame_owner(frame: str) -> str:
    """Which code a py-spy frame ('func (path:line)') belongs to."""
    path = frame[frame.rfind("(") + 1 :]
    if frame.startswith(("Runner.run ", "BaseEventLoop.run_until_complete ", "run ")):
        return "event loop (uvloop, C)"  # time inside uvloop's C code shows up here
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].split(".", 1)[0]
    for ours in ("/server/", "/tools/"):
        if ours in path and "site-packages" not in path:
            return "OURS " + ours.strip("/")
    if "/asyncio/" in path:
        return "stdlib asyncio"
    if "/lib/python" in path:
        return "stdlib"
    return "other"


def summarise_collapsed(text: str, top: int = 25) -> dict[str, Any]:
    """Self time by package and by function, and inclusive time of our functions."""
    by_owner: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    inclusive_ours: Counter[str] = Counter()
    inclusive_owner: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        by_owner[_frame_owner(leaf)] += count
        self_fn[leaf] += count
        seen_fn = set()
        seen_owner = set()
        for frame in frames:
            owner = _frame_owner(frame)
            if owner not in seen_owner:
                seen_owner.add(owner)
                inclusive_owner[owner] += count
            if owner.startswith("OURS") and frame not in seen_fn:
                seen_fn.add(frame)
                inclusive_ours[frame] += count

    def pct(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(n)] if total else []

    return {
        "samples": total,
        "self_pct_by_package": pct(by_owner, 20),
        "inclusive_pct_by_package": pct(inclusive_owner, 20),
        "self_pct_top_functions": pct(self_fn, top),
        "inclusive_pct_our_functions": pct(inclusive_ours, top),
    }


async def profile(admin_dsn: str, calls: int, seconds: float, codec: str) -> dict[str, Any]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: `.venv/bin/pip install py-spy`")
    out_raw = Path("/tmp") / f"relay-profile-{calls}.txt"
    out_svg = Path("/tmp") / f"relay-profile-{calls}.svg"
    async with throwaway_database(admin_dsn) as dsn:
        model, model_port = await start_echo_model()
        try:
            server, port = await start_server(dsn, model_port)
            try:
                url = f"ws://127.0.0.1:{port}{MODEL_QUERY}"
                await run_loadgen(url, 2, seconds=1.0, warmup=0.2)
                await wait_model_idle(model_port)
                load = asyncio.create_task(
                    run_loadgen(
                        url, calls, seconds=seconds, codec=codec, pids={"server": server.pid}
                    )
                )
                # Sample only the steady part: after the ramp and the warm-up.
                await asyncio.sleep(calls / RAMP_PER_S + WARMUP_S + 1.0)
                half = max(1, (int(seconds) - 2) // 2)  # collapsed stacks, then the flamegraph
                results = {}
                for fmt, path in (("raw", out_raw), ("flamegraph", out_svg)):
                    spy_process = await asyncio.create_subprocess_exec(
                        spy,
                        "record",
                        "--pid",
                        str(server.pid),
                        "--duration",
                        str(half),
                        "--rate",
                        "250",
                        "--format",
                        fmt,
                        "--output",
                        str(path),
                        "--nonblocking",
                        "--full-filenames",
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                    results[fmt] = await asyncio.wait_for(spy_process.wait(), half + 30)
                load_result = await load
            finally:
                await stop(server)
        finally:
            await stop(model)
    if not out_raw.exists():
        raise SystemExit(f"py-spy produced nothing (exit codes {results}); ptrace allowed?")
    summary = summarise_collapsed(out_raw.read_text())
    summary.update(
        {
            "calls": calls,
            "codec": codec,
            "collapsed_stacks": str(out_raw),
            "flamegraph": str(out_svg),
            "load": {k: load_result[k] for k in ("connected", "frames_lost", "latency", "cpu_s")},
        }
    )
    return summary
