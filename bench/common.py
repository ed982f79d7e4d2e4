"""Shared bits of the benchmarks: a throwaway database, percentiles, the results table."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from harness.databases import server_dsn, throwaway_database, with_database
from harness.processes import NO_CLIENT_LIMITS, clean_env, free_port, spawn_listening, stop
from server.settings import PROJECT_ROOT

__all__ = [
    "NO_CLIENT_LIMITS",
    "clean_env",
    "free_port",
    "machine",
    "percentile",
    "print_table",
    "server_dsn",
    "spawn_listening",
    "stop",
    "summary_ms",
    "throwaway_database",
    "with_database",
    "write_results",
]

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
