"""The relay's targets, judged from one run's rows, and how they are printed."""

from __future__ import annotations

import json
from typing import Any

TARGETS = {
    "relay_added_p99_ms_at_50": 2.0,
    "relay_added_p99_ms_at_200": 10.0,
    "calls_without_loss": 200,
    "cpu_us_per_relayed_message": 40.0,
    "idle_kb_per_call": 200.0,
}


def evaluate_targets(rows: list[dict[str, Any]], idle: list[dict[str, Any]]) -> dict[str, Any]:
    relay = {r["calls"]: r for r in rows if r["target"] == "relay" and r["codec"] == "pcm16"}
    out: dict[str, Any] = {}

    def check(name: str, value: Any, met: bool | None, note: str) -> None:
        out[name] = {"target": TARGETS[name], "value": value, "met": met, "how": note}

    for calls in (50, 200):
        name = f"relay_added_p99_ms_at_{calls}"
        value = relay.get(calls, {}).get("added_p99_ms")
        met = None if value is None else value <= TARGETS[name]
        check(name, value, met, f"relay p99 - direct p99, PCM16, {calls} calls; <= target")
    clean = 0
    for calls in sorted(relay):
        row = relay[calls]
        if row["frames_lost"] == 0 and not row["broke"]:
            clean = calls
        else:
            break
    check(
        "calls_without_loss",
        clean,
        clean >= TARGETS["calls_without_loss"] if relay else None,
        "largest N (PCM16) such that it and every smaller N lost no frame; >= target",
    )
    per_msg: dict[int, float] = {
        c: r["cpu_us_per_msg"]
        for c, r in relay.items()
        if 10 <= c <= 200 and r.get("cpu_us_per_msg") is not None
    }
    worst = max(per_msg.values()) if per_msg else None
    check(
        "cpu_us_per_relayed_message",
        {"worst": worst, "by_calls": per_msg},
        None if worst is None else worst <= TARGETS["cpu_us_per_relayed_message"],
        "server CPU / (appends in + deltas out), worst over 10..200 calls; <= target",
    )
    measured = [i for i in idle if i["kb_per_call"] is not None]
    largest = max(measured, key=lambda i: i["calls"]) if measured else None
    value = largest["kb_per_call"] if largest else None
    check(
        "idle_kb_per_call",
        {"value": value, "at_calls": largest["calls"] if largest else None},
        None if value is None else value < TARGETS["idle_kb_per_call"],
        "(RSS with N idle calls - RSS with 0) / N at the largest N; < target",
    )
    return out


def print_targets(title: str, targets: dict[str, Any]) -> None:
    print(f"\n{title}")
    for name, t in targets.items():
        verdict = {True: "MET", False: "NOT MET", None: "not measured"}[t["met"]]
        value = t["value"]
        if isinstance(value, dict):
            value = json.dumps(value)
        print(f"  {verdict:12} {name}: {value} (target {t['target']}; {t['how']})")
