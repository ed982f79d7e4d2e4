"""One relay run's figures: a row per target, relay minus direct, CPU per message against the
byte proxy's; and when a run counts as broken."""

from __future__ import annotations

from typing import Any

LOSS_LIMIT_PCT = 0.1
P99_LIMIT_MS = 1000.0


def broke(result: dict[str, Any]) -> str | None:
    """Why a streaming run counts as broken, or None."""
    if result["connected"] < result["calls"]:
        return f"{result['calls'] - result['connected']} calls did not connect"
    if not result["frames_sent"]:
        return "no frames sent"
    if result["loss_pct"] > LOSS_LIMIT_PCT:
        return f"{result['loss_pct']}% frames lost"
    if result["latency"] is None or result["latency"]["p99_ms"] > P99_LIMIT_MS:
        return "p99 over 1 s"
    return None


def relay_row_of(codec: str, calls: int, target: str, result: dict[str, Any]) -> dict[str, Any]:
    latency = result["latency"] or {}
    lag = result["send_lag"] or {}
    return {
        "codec": codec,
        "calls": calls,
        "target": target,
        "connected": result["connected"],
        "p50_ms": latency.get("p50_ms"),
        "p90_ms": latency.get("p90_ms"),
        "p99_ms": latency.get("p99_ms"),
        "max_ms": latency.get("max_ms"),
        "frames_sent": result["frames_sent"],
        "frames_lost": result["frames_lost"],
        "loss_pct": result["loss_pct"],
        "out_of_order": result["out_of_order"],
        "model_cpu_pct": _pct(result["cpu_s"].get("model"), result["window_s"]),
        "loadgen_cpu_pct": result["loadgen_cpu_pct"],
        "send_lag_p99_ms": lag.get("p99_ms"),
        "machine_busy_pct": result.get("machine_busy_pct"),
        "server_rq_wait_pct": (result.get("run_queue_wait_pct") or {}).get("server"),
        "broke": broke(result),
    }


def _pct(cpu_s: float | None, window_s: float) -> float | None:
    return None if cpu_s is None or not window_s else round(100 * cpu_s / window_s, 1)


def relay_figures(
    relay: dict[str, Any],
    direct: dict[str, Any],
    floor: dict[str, Any],
    calls: int,
    idle_kb: float | None,
) -> dict[str, Any]:
    """Relay minus direct, and the server's CPU and memory figures."""
    out: dict[str, Any] = {}
    if relay["latency"] and direct["latency"]:
        for q in ("p50", "p99"):
            r, d = relay["latency"][f"{q}_ms"], direct["latency"][f"{q}_ms"]
            out[f"added_{q}_ms"] = round(r - d, 3)
            out[f"ratio_{q}"] = round(r / d, 2) if d > 0 else None
    cpu = relay["cpu_s"].get("server")
    window = relay["window_s"]
    messages = relay["frames_in"] + relay["frames_out"]
    if cpu is not None and window > 0:
        out["server_cpu_pct"] = _pct(cpu, window)
        out["cpu_s_per_call_s"] = round(cpu / (calls * window), 5)
        out["cpu_us_per_msg"] = round(cpu / messages * 1e6, 1) if messages else None
    floor_cpu = floor["cpu_s"].get("proxy")
    floor_messages = floor["frames_in"] + floor["frames_out"]
    if floor_cpu and floor_messages:
        out["floor_cpu_us_per_msg"] = round(floor_cpu / floor_messages * 1e6, 1)
        if out.get("cpu_us_per_msg"):
            out["cpu_vs_floor"] = round(out["cpu_us_per_msg"] / out["floor_cpu_us_per_msg"], 2)
    out["idle_kb_per_call"] = idle_kb
    return out


COLUMNS = [
    "codec",
    "calls",
    "target",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "frames_sent",
    "frames_lost",
    "out_of_order",
    "added_p50_ms",
    "added_p99_ms",
    "ratio_p50",
    "ratio_p99",
    "server_cpu_pct",
    "cpu_s_per_call_s",
    "cpu_us_per_msg",
    "floor_cpu_us_per_msg",
    "cpu_vs_floor",
    "idle_kb_per_call",
    "model_cpu_pct",
    "loadgen_cpu_pct",
    "send_lag_p99_ms",
    "machine_busy_pct",
    "server_rq_wait_pct",
]
