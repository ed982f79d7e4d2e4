"""The relay latency plot: p50 and p99 round trip vs concurrent calls, relay vs direct.

Reads the dict written to bench/results/relay-latest.json (or that file:
`python -m bench.plot [path]`) and draws bench/results/relay-latency.png with matplotlib's Agg
backend: log x (calls) and log y (ms), one line per target and percentile, PCM16 solid and G.711
(frame size only) dotted when present, a cross where the relay broke.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench.common import RESULTS_DIR

PNG = RESULTS_DIR / "relay-latency.png"
STYLE = {
    ("relay", "p50_ms"): ("tab:red", "o", "relay p50"),
    ("relay", "p99_ms"): ("tab:red", "^", "relay p99"),
    ("direct", "p50_ms"): ("tab:blue", "o", "direct p50"),
    ("direct", "p99_ms"): ("tab:blue", "^", "direct p99"),
}


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 100 else f"{value:.3g} ms"


def plot_relay_latency(data: dict[str, Any], path: Path = PNG) -> Path:
    rows = data["rows"]
    codecs = [c for c in ("pcm16", "g711") if any(r["codec"] == c for r in rows)]
    calls = sorted({r["calls"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for codec in codecs:
        dotted = codec != "pcm16"
        for (target, key), (color, marker, label) in STYLE.items():
            points = [
                (r["calls"], r[key])
                for r in rows
                if r["codec"] == codec and r["target"] == target and r[key]
            ]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.plot(
                xs,
                ys,
                color=color,
                marker=marker,
                linestyle=":" if dotted else ("-" if key == "p99_ms" else "--"),
                alpha=0.6 if dotted else 1.0,
                label=f"{label}{' (G.711 frame size)' if dotted else ''}",
            )
            if target == "relay" and key == "p99_ms" and not dotted:
                for x, y in points:
                    ax.annotate(
                        _ms(y),
                        (x, y),
                        textcoords="offset points",
                        xytext=(4, 6),
                        fontsize=8,
                        color=color,
                    )
        for r in rows:
            if r["codec"] == codec and r["target"] == "relay" and r.get("broke") and r["p99_ms"]:
                ax.plot([r["calls"]], [r["p99_ms"]], "kx", markersize=12, mew=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(calls))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: _ms(y)))
    ax.set_xlabel("concurrent calls (each 50 frames/s of 20 ms audio)")
    ax.set_ylabel("round trip per frame, ms (log)")
    m = data.get("machine", {})
    ax.set_title(
        "Audio frame round trip: through our relay vs straight to the echo model\n"
        f"{m.get('cpus', '?')} CPUs, 1-min load avg {m.get('load_avg_1m', '?')}, "
        f"{data.get('settings', {}).get('steady_window_s', '?')} s steady window per point"
        " (x = relay broke)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_DIR / "relay-latest.json"
    print(plot_relay_latency(json.loads(source.read_text())))
