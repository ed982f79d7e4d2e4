"""The tool benchmark's callers: calls through the relay that ask for a tool, round after round.

Each caller opens a call through the relay, streams PCM16 audio in real time (20 ms frames, 50/s;
off with `--no-audio`) and, round after round, sends a user text item + `response.create`, then
waits for the round's two `session.stats` events (one per response.done), the second of which
carries the tool's own duration (`duration_ms`, measured by the tool registry) -- reported as
`handler`, so round trip minus handler is the relay's part. The round trips themselves are read
from the fake model (`bench.tool_model`), which timed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.calls import DELTA_PREFIX, FRAME_S, MAX_SIZE, audio_body, frame_text
from bench.common import summary_ms
from bench.processes import http_get
from protocol import realtime as p

ROUND_TIMEOUT_S = 10.0


class Caller:
    def __init__(self, index: int, tool: str, audio: bool):
        self.index, self.tool, self.audio = index, tool, audio
        self.stats_seen = 0
        self.changed = asyncio.Event()
        self.handler_ms: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.failed: str | None = None

    async def run(
        self, url: str, start_at: float, rounds_at: float, rounds: int, interval: float
    ) -> None:
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        try:
            async with asyncio.timeout(15):
                ws = await connect(
                    url,
                    max_queue=None,
                    compression=None,
                    max_size=MAX_SIZE,
                    ping_interval=None,
                    proxy=None,
                    user_agent_header=None,
                )
                await ws.recv()
        except (TimeoutError, OSError, ConnectionClosed) as exc:
            self.failed = f"connect: {type(exc).__name__}"
            return
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self.read(ws))]
        if self.audio:
            tasks.append(asyncio.create_task(self.stream(ws, stop)))
        try:
            for r in range(rounds):
                await asyncio.sleep(max(0.0, rounds_at + r * interval - time.perf_counter()))
                wanted = self.stats_seen + 2  # one session.stats per response.done
                await ws.send(_user_text(self.tool))
                await ws.send('{"type":"response.create"}')
                try:
                    async with asyncio.timeout(ROUND_TIMEOUT_S):
                        while self.stats_seen < wanted:
                            self.changed.clear()
                            await self.changed.wait()
                except TimeoutError:
                    self.failed = f"round {r} timed out"
                    return
        except ConnectionClosed:
            self.failed = "closed by the server"
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await ws.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def read(self, ws: Any) -> None:
        async for message in ws:
            if not isinstance(message, str) or message.startswith(DELTA_PREFIX):
                continue
            if message.startswith('{"type":"'):
                kind = message[9 : message.find('"', 9)]
            else:
                kind = str(orjson.loads(message).get("type"))
            if kind == p.SESSION_STATS:
                calls = orjson.loads(message).get("tool_calls") or []
                if self.stats_seen % 2 == 1 and calls:  # the round's second stats event
                    self.handler_ms.append(float(calls[-1]["duration_ms"]))
                self.stats_seen += 1
                self.changed.set()
            elif kind.startswith("reservation.") or kind == p.ERROR:
                self.outcomes[kind] += 1

    async def stream(self, ws: Any, stop: asyncio.Event) -> None:
        body = audio_body("pcm16")
        t0 = time.perf_counter() + (self.index * 0.618) % 1.0 * FRAME_S
        for seq in itertools.count():
            if stop.is_set():
                return
            await asyncio.sleep(max(0.0, t0 + seq * FRAME_S - time.perf_counter()))
            await ws.send(frame_text(body, self.index, seq))


def _user_text(tool: str) -> str:
    item = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": f"please call {tool}"}],
    }
    return orjson.dumps({"type": p.ITEM_CREATE, "item": item}).decode()


async def run_callers(
    url: str, model_port: int, tool: str, calls: int, rounds: int, interval: float, audio: bool
) -> dict[str, Any]:
    await _model_get(model_port, "/reset")
    callers = [Caller(i, tool, audio) for i in range(calls)]
    start = time.perf_counter()
    ramp = 50.0  # calls per second
    ramp_s = calls / ramp
    first_round = start + ramp_s + 1.0  # every call connected (and streaming) before round 0
    began = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                # connects ramped at 50/s; rounds phase-spread over one interval
                c.run(
                    url,
                    start + c.index / ramp,
                    first_round + c.index / calls * interval,
                    rounds,
                    interval,
                )
                for c in callers
            )
        ),
        timeout=ramp_s + 1 + rounds * interval + ROUND_TIMEOUT_S + 30,
    )
    elapsed = time.perf_counter() - began
    samples = (await _model_get(model_port, "/samples"))["samples"]
    round_trips = [ms / 1000 for name, ms in samples if name == tool]
    handler = [ms / 1000 for c in callers for ms in c.handler_ms]
    outcomes: Counter[str] = Counter()
    for c in callers:
        outcomes.update(c.outcomes)
    failures = Counter(c.failed for c in callers if c.failed)
    row: dict[str, Any] = {"tool": tool, "calls": calls, "audio": audio}
    if round_trips:
        row.update(summary_ms(round_trips))
    if handler:
        h = summary_ms(handler)
        row["handler_p50_ms"], row["handler_p99_ms"] = h["p50_ms"], h["p99_ms"]
        if round_trips:
            row["relay_part_p50_ms"] = round(row["p50_ms"] - h["p50_ms"], 3)
    row["tool_calls_per_s"] = round(len(round_trips) / max(rounds * interval, 1e-9), 1)
    row["outcomes"] = dict(outcomes)
    row["failures"] = dict(failures)
    row["wall_s"] = round(elapsed, 1)
    return row


async def _model_get(port: int, path: str) -> dict[str, Any]:
    status, body = await http_get(port, path)
    if status != 200:
        raise RuntimeError(f"fake model {path}: HTTP {status}")
    return json.loads(body)
