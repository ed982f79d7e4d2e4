"""Shared bits of the benchmarks: a throwaway database, percentiles, the results table."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import socket
import statistics
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from server.database import start_embedded
from server.settings import PROJECT_ROOT

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def with_database(dsn: str, name: str) -> str:
    """The same server's DSN, pointing at database `name`."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@contextlib.contextmanager
def server_dsn(data_name: str = "bench-pg") -> Iterator[str]:
    """DATABASE_URL's server if set, else an embedded one under `.data/<data_name>`.

    Shared by the benchmarks and the test suite: both make throwaway databases on it.
    """
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    embedded = start_embedded(PROJECT_ROOT / ".data" / data_name)
    try:
        yield embedded.uri
    finally:
        embedded.stop()


@contextlib.asynccontextmanager
async def throwaway_database(admin_dsn: str, prefix: str = "bench") -> AsyncIterator[str]:
    """A new empty database on the server of `admin_dsn`, dropped (even if in use) afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- child processes (server, models, load generator) ----------------------------------------

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


def write_results(kind: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{kind}-latest.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)))
