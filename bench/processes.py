"""The processes every load benchmark runs: the echo model, our server, the load generator.

Split from `bench.relay` so the phone, SIP, tools and records benchmarks share them without
importing the relay benchmark. All on 127.0.0.1, each its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import clean_env, free_port, spawn_listening, stop
from server.settings import PROJECT_ROOT

DEFAULT_SECONDS = 15.0
RAMP_PER_S = 50.0
WARMUP_S = 1.0
GRACE_S = 2.0
MODEL_QUERY = "/v1/realtime?model=gpt-realtime"


async def http_get(port: int, path: str, timeout_s: float = 3.0) -> tuple[int, bytes]:
    """A one-shot HTTP/1.1 GET on 127.0.0.1 (no client library: nothing to proxy)."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            raw = await reader.read(-1)
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


async def start_echo_model(*extra: str) -> tuple[asyncio.subprocess.Process, int]:
    """`python -m offline_model --port 0 --echo`; returns the process and its port."""
    return await spawn_listening(
        "the echo model", "-m", "offline_model", "--port", "0", "--echo", *extra
    )


async def start_server(
    dsn: str,
    model_port: int,
    *,
    max_sessions: int = 1000,
    wrap: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    root: Path = PROJECT_ROOT,
) -> tuple[asyncio.subprocess.Process, int]:
    """`python -m server` against the local model (`extra_env`: more environment variables;
    `root`: the source tree to run, e.g. a git worktree of the commit to compare against);
    waits for /healthz. Returns process, port."""
    port = free_port()
    env = clean_env(
        OPENAI_BASE_URL=f"http://127.0.0.1:{model_port}/v1",
        DATABASE_URL=dsn,
        MAX_SESSIONS=str(max_sessions),
        LOG_LEVEL="warning",
        HOST="127.0.0.1",
        PORT=str(port),
        **(extra_env or {}),
    )
    return await spawn_server(env, port, wrap, root)


async def spawn_server(
    env: dict[str, str], port: int, wrap: list[str] | None = None, root: Path = PROJECT_ROOT
) -> tuple[asyncio.subprocess.Process, int]:
    """`python -m server` with `env` (listening on `port`), once /healthz answers 200.

    `-m` puts the working directory first on the import path, so `root` decides which tree's
    `server` runs (with this venv's libraries)."""
    process = await asyncio.create_subprocess_exec(
        *(wrap or []), sys.executable, "-m", "server", cwd=root, env=env
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the server exited during start-up ({process.returncode})")
        with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError):
            status, _ = await http_get(port, "/healthz")
            if status == 200:
                return process, port
        await asyncio.sleep(0.1)
    await stop(process)
    raise RuntimeError("the server did not become healthy within 60 s")


async def wait_model_idle(model_port: int, within_s: float = 20.0) -> bool:
    """Until the echo model has no session open (the relay closed every model socket)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, TimeoutError, ValueError):
            status, body = await http_get(model_port, "/stats")
            if status == 200 and json.loads(body)["sessions_active"] == 0:
                return True
        await asyncio.sleep(0.1)
    return False


async def run_loadgen(
    url: str,
    calls: int,
    *,
    seconds: float = DEFAULT_SECONDS,
    codec: str = "pcm16",
    pids: dict[str, int] | None = None,
    idle: bool = False,
    warmup: float = WARMUP_S,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One `python -m bench.loadgen` process (`extra`: more of its options); its JSON line."""
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--calls",
        str(calls),
        "--seconds",
        str(seconds),
        "--codec",
        codec,
        "--ramp",
        str(RAMP_PER_S),
        "--warmup",
        str(warmup),
        "--grace",
        str(GRACE_S),
    ]
    if idle:
        argv.append("--idle")
    argv += extra
    for name, pid in (pids or {}).items():
        argv += ["--pid", f"{name}={pid}"]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, cwd=PROJECT_ROOT, env=clean_env()
    )
    budget = calls / RAMP_PER_S + warmup + (0 if idle else seconds) + GRACE_S + 60
    try:
        out, _ = await asyncio.wait_for(process.communicate(), budget)
    except TimeoutError:
        await stop(process, 5)
        raise RuntimeError(f"load generator did not finish within {budget:.0f}s") from None
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1])
