"""`python -m bench speech --matrix`: the offline recogniser's accuracy on numbers and names.

Every voice × speed cell of ``offline_model.accuracy`` (6 espeak-ng voices × 130/160/190 wpm),
``--matrix-per-cell`` random 8-digit numbers and full names each (20 by default, a fresh seed
per run unless ``--matrix-seed``), on the page path (24 kHz PCM16) and the phone path (8 kHz
μ-law), decoded as the answer to the host's question. Writes `bench/results/speech-matrix-
latest.json` and the table between the markers in `docs/offline-speech.md`.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

from bench.common import machine, write_results
from offline_model import accuracy
from server.settings import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "offline-speech.md"
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
COLUMNS = (("number", "page"), ("name", "page"), ("number", "phone"), ("name", "phone"))


def _pct(right: int, total: int) -> str:
    return f"{100 * right / total:.0f} %" if total else "–"


def table(cells: dict[tuple[str, int], dict[tuple[str, str], list[int]]]) -> str:
    """Markdown: one row per voice × speed, exact numbers and names per path, then totals."""
    lines = [
        "| voice | wpm | numbers, page | names, page | numbers, phone | names, phone |",
        "|---|---|---|---|---|---|",
    ]
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (voice, speed), cell in cells.items():
        row = []
        for column in COLUMNS:
            right, total = cell.get(column, [0, 0])
            totals[column][0] += right
            totals[column][1] += total
            row.append(f"{right}/{total}")
        lines.append(f"| {voice} | {speed} | " + " | ".join(row) + " |")
    lines.append("| **all** | | " + " | ".join(f"**{_pct(*totals[c])}**" for c in COLUMNS) + " |")
    return "\n".join(lines)


def run(per_cell: int, seed: int | None, workers: int) -> dict[str, Any]:
    seed = random.SystemRandom().randrange(1 << 30) if seed is None else seed
    samples = accuracy.draw(seed, per_cell)
    print(f"speech matrix: seed {seed}, {len(samples)} utterances × 2 paths, {workers} workers")
    started = time.monotonic()
    cells: dict[tuple[str, int], dict[tuple[str, str], list[int]]] = {}
    general: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    cpu = {path: [0.0, 0.0] for path in accuracy.PATHS}
    misses: list[dict[str, str]] = []
    for score in accuracy.run(samples, workers):
        sample = score.sample
        cell = cells.setdefault((sample.voice, sample.speed), {})
        counts = cell.setdefault((sample.kind, score.path), [0, 0])
        counts[0] += score.right
        counts[1] += 1
        general[(sample.kind, score.path)][0] += score.general_right
        general[(sample.kind, score.path)][1] += 1
        cpu[score.path][0] += score.cpu_s
        cpu[score.path][1] += score.audio_s
        if not score.right and len(misses) < 60:
            misses.append({"said": sample.text, "voice": sample.voice, "heard": score.heard})
    markdown = table(cells)
    baseline = ", ".join(f"{kind}s {path} {_pct(*general[(kind, path)])}" for kind, path in COLUMNS)
    cost = ", ".join(f"{path} {c / s:.3f}" for path, (c, s) in cpu.items() if s)
    summary = (
        f"{markdown}\n\nSeed {seed}, {per_cell} numbers and {per_cell} names per cell. "
        f"The general booking model alone on the same audio: {baseline}. "
        f"Decoding CPU seconds per second of speech (answer search + general model): {cost}."
    )
    print(summary)
    print(f"({time.monotonic() - started:.0f} s)")
    if DOC.exists():
        text = DOC.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            DOC.write_text(f"{head}{BEGIN}\n{summary}\n{END}{rest.split(END, 1)[1]}", "utf-8")
    result = {
        "machine": machine(),
        "seed": seed,
        "per_cell": per_cell,
        "cells": {
            f"{v} {s}": {f"{k} {p}": c for (k, p), c in cell.items()}
            for (v, s), cell in cells.items()
        },
        "general_model": {f"{k} {p}": c for (k, p), c in general.items()},
        "cpu_s_per_speech_s": {path: c / s for path, (c, s) in cpu.items() if s},
        "misses": misses,
    }
    path = write_results("speech-matrix", result)
    print(f"written {path} and {DOC}")
    return result
