"""`python -m server` as a child process: "another process" for the tests that need one.

The process is started with its own DATABASE_URL and port, read until uvicorn says start-up is
complete (bounded), its log kept in memory (never a full pipe), and stopped with SIGTERM (then
SIGKILL) when the block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bench.common import clean_env, free_port, stop
from server.settings import PROJECT_ROOT


@dataclass
class ServerProcess:
    url: str
    process: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Log lines at error level (an unhandled exception is one)."""
        return [line for line in self.log if '"level": "error"' in line or "Traceback" in line]


async def _keep(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def server_process(dsn: str, **env: str) -> AsyncIterator[ServerProcess]:
    port = free_port()
    environment = clean_env(
        DATABASE_URL=dsn, PORT=str(port), LOG_LEVEL="info", LOG_FORMAT="json", **env
    )
    for name in ("OPENAI_BASE_URL", "ACCESS_TOKEN", "STAFF_TOKEN", "ALLOWED_ORIGINS"):
        if name not in env:
            environment.pop(name, None)  # the developer's shell must not change the test
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    handle = ServerProcess(f"http://127.0.0.1:{port}", process)
    try:
        async with asyncio.timeout(60):
            while "Application startup complete" not in (
                line := (await process.stderr.readline()).decode(errors="replace")
            ):
                handle.log.append(line)
                if not line:
                    raise RuntimeError("the server process exited during start-up")
        reader = asyncio.create_task(_keep(process.stderr, handle.log))
        try:
            yield handle
        finally:
            await stop(process)
            await reader
    finally:
        await stop(process)
