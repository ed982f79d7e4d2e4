"""Child processes for the tests and the benchmarks: a clean environment, ports, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys

from server.settings import PROJECT_ROOT

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY")


# A benchmark is one client opening hundreds of calls and requests a minute from 127.0.0.1.
NO_CLIENT_LIMITS = {
    "MAX_CALLS_PER_CLIENT": "0",
    "MAX_NEW_CALLS_PER_MIN": "0",
    "MAX_REQUESTS_PER_MIN": "0",
}


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for our child processes: no API key, no proxies, loopback only, and no
    per-client limits."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _PROXY_VARS}
    env.update(NO_CLIENT_LIMITS)
    env.pop("OPENAI_API_KEY", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def stop(process: asyncio.subprocess.Process, within_s: float = 15.0) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), within_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def spawn_listening(what: str, *args: str) -> tuple[asyncio.subprocess.Process, int]:
    """`python *args`, which prints "... http://127.0.0.1:PORT/..." once it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, cwd=PROJECT_ROOT, env=clean_env()
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    except TimeoutError:
        await stop(process)
        raise RuntimeError(f"{what} did not start") from None
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not match:
        await stop(process)
        raise RuntimeError(f"unexpected output from {what}: {line!r}")
    return process, int(match.group(1))
