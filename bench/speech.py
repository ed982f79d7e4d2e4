"""`python -m bench speech`: the offline model's ears — what it hears, what hearing costs, and how
many callers can talk to one offline-model process at once.

1. **Recognition per fixture** (this process): every espeak-ng WAV in `tests/data/speech/`, as the
   model gets it (page fixtures resampled to 24 kHz PCM16, phone fixtures through μ-law 8 kHz),
   decoded once; the words, the text made of them, and which slots the intent parser recovers
   against what was said. This is the README's "Speech" table.
2. **CPU per second of speech** (this process): each fixture decoded `--repeat` times; the
   decoder's CPU seconds (user + system, `time.process_time`) over seconds of audio, per path.
3. **Concurrent speaking calls** (a separate `python -m offline_model` process, default
   recogniser workers): N callers each stream a booking utterance in real time (20 ms appends),
   then silence until the reply starts, then speak again, staggered so they do not all stop at
   once. Per turn: the model's `speech_stopped` lateness (received − when the frame at its
   `audio_end_ms` was sent: the model's event loop keeping up with everyone's audio),
   speech end → `transcription.completed`, speech end → `response.created`, refusals
   (`transcription.failed`). N is "served" when no turn is refused, p95 speech end → reply stays
   under `--reply-budget-s` (default 2 s), and p95 stop lateness under 100 ms. CPU of the model
   process and its recogniser workers is read with psutil over the window.

With `--matrix`, only the accuracy matrix instead (`bench/speech_matrix.py`): random numbers
and names said by espeak-ng in 6 voices × 3 speeds, page and phone path, written into
`docs/offline-speech.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psutil
from websockets.asyncio.client import connect

from bench import speech_matrix
from bench.common import machine, percentile, print_table, spawn_listening, stop, write_results
from offline_model import asr_worker
from offline_model.intents import parse
from offline_model.transcript import normalise
from protocol import g711
from protocol import realtime as p
from server.settings import PROJECT_ROOT

SPEECH = PROJECT_ROOT / "tests" / "data" / "speech"
FRAME_S = 0.02
FRAME_BYTES = 960  # 20 ms of PCM16 24 kHz
DEFAULT_CALLS = (1, 4, 8, 16, 24, 32)
TURN_FIXTURE = "book-klatt-145"
STOP_LATE_BUDGET_S = 0.1
TRANSCRIPTION_FAILED = "conversation.item.input_audio_transcription.failed"


def _fixtures() -> Any:
    spec = importlib.util.spec_from_file_location("make_fixtures", SPEECH / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_fixtures", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def model_input(fixtures: Any, fixture: Any) -> tuple[bytes, int]:
    """PCM16 as the model decodes it: 24 kHz for page fixtures, μ-law-decoded 8 kHz for phone."""
    if fixture.rate == 8_000:
        pcm, _ = fixtures.read(fixture.path)
        return g711.decode(g711.encode(pcm)), 8_000
    return fixtures.read_as(fixture, p.PCM16_RATE), p.PCM16_RATE


def _expected(fixture: Any, slot: str, today: date) -> Any:
    value = fixture.slots[slot]
    if slot != "date":
        return value
    if value.startswith("+"):
        return date.fromordinal(today.toordinal() + int(value[1:])).isoformat()
    if value == "friday":
        return date.fromordinal(today.toordinal() + (4 - today.weekday()) % 7).isoformat()
    month, day = (int(part) for part in value.split("-"))
    candidate = date(today.year, month, day)
    return (candidate if candidate >= today else date(today.year + 1, month, day)).isoformat()


def recognition(repeat: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Parts 1 and 2: per-fixture results, and CPU per second of speech per path."""
    fixtures = _fixtures()
    asr_worker.init()
    today = date.today()
    rows: list[dict[str, Any]] = []
    cost: dict[str, list[float]] = {"page 24 kHz": [0.0, 0.0], "phone 8 kHz u-law": [0.0, 0.0]}
    for fixture in fixtures.FIXTURES:
        pcm, rate = model_input(fixtures, fixture)
        seconds = len(pcm) / 2 / rate
        words = ""
        for _ in range(repeat):
            words, _, cpu = asr_worker.decode(pcm, rate)
            path = "phone 8 kHz u-law" if rate == 8_000 else "page 24 kHz"
            cost[path][0] += cpu
            cost[path][1] += seconds
        text = normalise(words)
        parsed = parse(text, today)
        good = [
            slot
            for slot in fixture.slots
            if getattr(parsed, slot) == _expected(fixture, slot, today)
        ]
        rows.append(
            {
                "fixture": fixture.name,
                "voice": fixture.voice,
                "wpm": fixture.speed,
                "path": "phone" if rate == 8_000 else "page",
                "seconds": round(seconds, 2),
                "heard": text,
                "recovered": f"{len(good)}/{len(fixture.slots)}",
                "slots_ok": good,
                "slots_missed": [s for s in fixture.slots if s not in good],
                "claimed": list(fixture.recovered),
                "claims_hold": set(fixture.recovered) <= set(good),
            }
        )
    per_path = {
        path: {
            "cpu_s_per_speech_s": round(cpu / audio, 4),
            "speech_s": round(audio, 1),
            "cpu_s": round(cpu, 2),
        }
        for path, (cpu, audio) in cost.items()
        if audio
    }
    return rows, per_path


# --- part 3: concurrent speaking calls ---------------------------------------------------------


@dataclass
class Turns:
    """What the callers saw, turn by turn, in one run."""

    stop_late: list[float] = field(default_factory=list)
    heard: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)
    refused: int = 0
    errors: list[str] = field(default_factory=list)


async def _caller(url: str, utterance: bytes, offset_s: float, until: float, turns: Turns) -> None:
    silence = base64.b64encode(bytes(FRAME_BYTES)).decode()
    frames = [
        base64.b64encode(utterance[i : i + FRAME_BYTES]).decode()
        for i in range(0, len(utterance), FRAME_BYTES)
    ]
    async with connect(url, max_size=None) as ws:
        session = {
            "type": "realtime",
            "audio": {"input": {"transcription": {"model": "offline"}}},
            "output_modalities": ["text"],
        }
        await ws.send(json.dumps({"type": p.SESSION_UPDATE, "session": session}))
        stopped_at: float | None = None
        replied = asyncio.Event()
        t0 = due = time.perf_counter() + 0.1

        async def read() -> None:
            nonlocal stopped_at
            async for raw in ws:
                event = json.loads(raw)
                kind, now = event["type"], time.perf_counter()
                if kind == p.SPEECH_STOPPED:
                    stopped_at = now
                    # Frames go out on a fixed 20 ms schedule from t0, so the model's
                    # audio_end_ms names the moment its last silent frame was sent.
                    turns.stop_late.append(now - (t0 + event["audio_end_ms"] / 1000 - FRAME_S))
                elif kind == p.INPUT_TRANSCRIPTION_COMPLETED and stopped_at is not None:
                    turns.heard.append(now - stopped_at)
                elif kind == TRANSCRIPTION_FAILED:
                    turns.refused += 1
                elif kind == p.RESPONSE_CREATED and stopped_at is not None:
                    turns.reply.append(now - stopped_at)
                    stopped_at = None
                    replied.set()
                elif kind == p.ERROR:
                    turns.errors.append(event["error"]["code"])

        reader = asyncio.create_task(read())
        try:
            while due < until:
                for frame in [silence] * int(offset_s / FRAME_S) + frames:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    await ws.send(f'{{"type":"{p.INPUT_AUDIO_APPEND}","audio":"{frame}"}}')
                    due += FRAME_S
                offset_s = 0.0
                replied.clear()
                while not replied.is_set() and due < until + 5:  # silence until the reply
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    await ws.send(f'{{"type":"{p.INPUT_AUDIO_APPEND}","audio":"{silence}"}}')
                    due += FRAME_S
                for _ in range(25):  # half a second before speaking again
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    await ws.send(f'{{"type":"{p.INPUT_AUDIO_APPEND}","audio":"{silence}"}}')
                    due += FRAME_S
        finally:
            reader.cancel()


def _cpu(process: psutil.Process) -> float:
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


async def concurrency(
    calls_list: list[int], seconds: float, workers: int | None, budget_s: float
) -> list[dict[str, Any]]:
    fixtures = _fixtures()
    fixture = next(f for f in fixtures.FIXTURES if f.name == TURN_FIXTURE)
    utterance = fixtures.read_as(fixture, p.PCM16_RATE)
    utterance_s = len(utterance) / 2 / p.PCM16_RATE
    extra = ["--asr-workers", str(workers)] if workers else []
    process, port = await spawn_listening(
        "the offline model", "-m", "offline_model", "--port", "0", *extra
    )
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
    rows: list[dict[str, Any]] = []
    try:
        watched = psutil.Process(process.pid)
        # Warm-up, not measured: one short turn starts the recogniser's worker processes.
        warm = fixtures.read_as(
            next(f for f in fixtures.FIXTURES if f.name == "lookup-f2-150"), p.PCM16_RATE
        )
        await _caller(url, warm, 0.0, time.perf_counter() + 1.0, Turns())
        for calls in calls_list:
            turns = Turns()
            started = time.perf_counter()
            until = started + seconds
            cpu_before = _cpu(watched)
            await asyncio.gather(
                *(
                    _caller(url, utterance, i * utterance_s / calls, until, turns)
                    for i in range(calls)
                )
            )
            window = time.perf_counter() - started
            cpu = _cpu(watched) - cpu_before
            row = _row(calls, turns, cpu, window, budget_s)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        await stop(process)
    return rows


def _row(calls: int, turns: Turns, cpu: float, window: float, budget_s: float) -> dict[str, Any]:
    def p95(samples: list[float]) -> float | None:
        return round(percentile(samples, 95), 3) if samples else None

    reply95 = p95(turns.reply)
    late95 = p95(turns.stop_late)
    served = (
        turns.refused == 0
        and not turns.errors
        and reply95 is not None
        and reply95 <= budget_s
        and late95 is not None
        and late95 <= STOP_LATE_BUDGET_S
    )
    return {
        "calls": calls,
        "turns": len(turns.reply),
        "refused": turns.refused,
        "errors": len(turns.errors),
        "stop_late_p95_s": late95,
        "heard_p50_s": round(percentile(turns.heard, 50), 3) if turns.heard else None,
        "heard_p95_s": p95(turns.heard),
        "reply_p95_s": reply95,
        "model_cpu_pct": round(100 * cpu / window, 1),
        "served": served,
    }


def run(
    calls_list: list[int],
    seconds: float,
    repeat: int,
    workers: int | None,
    budget_s: float,
    matrix: argparse.Namespace | None = None,
) -> dict[str, Any]:
    if matrix is not None and matrix.matrix:
        return speech_matrix.run(matrix.matrix_per_cell, matrix.matrix_seed, matrix.matrix_workers)
    rows, per_path = recognition(repeat)
    print_table(
        "Recognition per fixture (README 'Speech')",
        rows,
        ["fixture", "path", "seconds", "recovered", "claims_hold", "heard"],
    )
    print_table(
        "Decoding CPU per second of speech",
        [{"path": path, **figures} for path, figures in per_path.items()],
        ["path", "cpu_s_per_speech_s", "speech_s", "cpu_s"],
    )
    load = asyncio.run(concurrency(calls_list, seconds, workers, budget_s))
    print_table(
        f"Concurrent speaking calls, one offline-model process ({seconds:g} s each)",
        load,
        [
            "calls",
            "turns",
            "refused",
            "stop_late_p95_s",
            "heard_p50_s",
            "heard_p95_s",
            "reply_p95_s",
            "model_cpu_pct",
            "served",
        ],
    )
    served = [row["calls"] for row in load if row["served"]]
    result = {
        "machine": machine(),
        "recogniser_workers": workers or "default (cores / 2)",
        "fixtures": rows,
        "cpu_per_speech_second": per_path,
        "concurrency": load,
        "most_calls_served": max(served) if served else 0,
    }
    path = write_results("speech", result)
    print(f"\nmost concurrently speaking calls served: {result['most_calls_served']}  ({path})")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speech-calls",
        type=lambda text: [int(n) for n in text.split(",")],
        default=list(DEFAULT_CALLS),
        help="speech: concurrent speaking callers per step",
    )
    parser.add_argument("--speech-seconds", type=float, default=20.0)
    parser.add_argument("--speech-repeat", type=int, default=3, help="decodes per fixture")
    parser.add_argument("--asr-workers", type=int, default=None)
    parser.add_argument("--reply-budget-s", type=float, default=2.0)
    parser.add_argument(
        "--matrix", action="store_true", help="speech: the numbers/names accuracy matrix only"
    )
    parser.add_argument("--matrix-per-cell", type=int, default=20)
    parser.add_argument("--matrix-seed", type=int, default=None)
    parser.add_argument("--matrix-workers", type=int, default=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.speech", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(
        args.speech_calls,
        args.speech_seconds,
        args.speech_repeat,
        args.asr_workers,
        args.reply_budget_s,
        args,
    )


if __name__ == "__main__":
    main()
