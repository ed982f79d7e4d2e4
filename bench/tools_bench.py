"""Tool-call benchmark: how long the relay takes to answer the model's function call.

Measured: the time from the model SENDING `response.function_call_arguments.done` to the relay's
`conversation.item.create` (`function_call_output`, same call_id) ARRIVING back at the model, for
`make_reservation` and `lookup_reservation`, with 1 and 100 concurrent calls. It includes the
relay parsing the event, the tool (argument checks + PostgreSQL through the server's pool, a
throwaway database) and serialising the output; both timestamps are `time.perf_counter()` in the
same (fake model) process, so no clocks are compared across processes.

How:

* A purpose-made fake model (this module with `--fake-model`, its own process, uvloop when
  installed) speaks just enough of the GA Realtime protocol: `session.created` on connect,
  `session.updated` for every `session.update`, echoes `input_audio_buffer.append` as
  `response.output_audio.delta` (so calls can carry audio load), and on `response.create` after a
  user text item naming a tool it emits `response.created`, `response.output_item.added`
  (function_call), `response.function_call_arguments.done` (timestamped), `response.output_item
  .done`, `response.done` -- as one burst, like the API. A `response.create` that follows a
  function_call_output (the relay's follow-up) gets a plain `response.created` + `response.done`.
  Arguments are valid: a unique SG mobile number per booking (`+6581` + 6 digits), a date a
  week ahead, 19:00, party of 2; lookups use numbers booked earlier in the same run (found path).
  `GET /samples` returns the timings, `GET /reset` clears them, `GET /stats` counts sessions.
* Our server (`python -m server`, its own process) points at it with `OPENAI_BASE_URL`.
* The callers run in this process: each opens a call through the relay, streams PCM16 audio in
  real time (20 ms frames, 50/s; `--no-audio` to switch off) and, `--rounds` times, sends a user
  text item + `response.create`, then waits for the round's two `session.stats` events (one per
  response.done), the second of which carries the tool's own duration (`duration_ms`, measured
  by the tool registry) -- reported as `handler`, so round trip minus handler is the relay's part.
  Rounds are paced (`--interval` seconds apart per call, calls phase-spread over the interval):
  1 call: 100 rounds 0.1 s apart; 100 calls: 10 rounds each 1 s apart, i.e. ~100 tool calls/s.

`python -m bench.tools_bench [--tool-calls 1,100]` writes bench/results/tools-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bench.calls import DELTA_PREFIX, FRAME_S, MAX_SIZE, audio_body, frame_text
from bench.common import (
    machine,
    print_table,
    server_dsn,
    spawn_listening,
    stop,
    summary_ms,
    throwaway_database,
    write_results,
)
from bench.processes import MODEL_QUERY, http_get, start_server, wait_model_idle
from bench.relay import parse_calls
from bench.targets import print_targets
from offline_model.echo import echo_frame
from protocol import realtime as p

TOOLS = ("make_reservation", "lookup_reservation")
DEFAULT_CALLS = (1, 100)
NAME = "Ada Lovelace"
TIMEZONE = ZoneInfo("Asia/Singapore")
ROUND_TIMEOUT_S = 10.0
TARGET_P99_MS = 5.0
_APPEND = '{"type":"input_audio_buffer.append"'


# --- the fake model ---------------------------------------------------------------------------


class FakeModel:
    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.pending: dict[str, tuple[str, float, str]] = {}  # call_id -> (name, t0, phone)
        self.samples: list[tuple[str, float]] = []
        self.booked: list[str] = []
        self.unmatched_outputs = 0
        self.function_calls = 0
        self.sessions_active = 0

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids)}"

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/samples":
            body = {
                "samples": self.samples,
                "function_calls": self.function_calls,
                "unmatched_outputs": self.unmatched_outputs,
                "pending": len(self.pending),
                "booked": len(self.booked),
            }
        elif path == "/reset":
            self.samples, self.pending, self.unmatched_outputs = [], {}, 0
            self.function_calls = 0
            body = {"ok": True}
        elif path == "/stats":
            body = {"sessions_active": self.sessions_active}
        elif path == "/v1/realtime":
            return None
        else:
            return connection.respond(404, "Not Found\n")
        response = connection.respond(200, json.dumps(body))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def session(self, ws: ServerConnection) -> None:
        self.sessions_active += 1
        send = ws.send
        try:
            await send(self._event(p.SESSION_CREATED, session=_session()))
            last_text = ""
            follow_up_due = False
            async for raw in ws:
                now = time.perf_counter()
                if not isinstance(raw, str):
                    continue
                if raw.startswith(_APPEND):
                    echoed = echo_frame(raw)
                    if echoed is not None:
                        await send(echoed[0])
                    continue
                event = orjson.loads(raw)
                kind = event.get("type")
                if kind == p.SESSION_UPDATE:
                    await send(self._event(p.SESSION_UPDATED, session=_session()))
                elif kind == p.ITEM_CREATE:
                    item = event.get("item") or {}
                    if item.get("type") == "function_call_output":
                        self._output_arrived(item, now)
                        follow_up_due = True
                    elif item.get("type") == "message":
                        content = item.get("content") or [{}]
                        last_text = str(content[0].get("text", ""))
                elif kind == p.RESPONSE_CREATE:
                    if follow_up_due:
                        follow_up_due = False
                        await self._spoken_reply(ws)
                    else:
                        await self._tool_call(ws, last_text)
        except ConnectionClosed:
            pass
        finally:
            self.sessions_active -= 1

    def _event(self, kind: str, **fields: Any) -> str:
        return orjson.dumps({"type": kind, "event_id": self._id("event"), **fields}).decode()

    def _output_arrived(self, item: dict[str, Any], now: float) -> None:
        started = self.pending.pop(str(item.get("call_id")), None)
        if started is None:
            self.unmatched_outputs += 1
            return
        name, t0, phone = started
        self.samples.append((name, round((now - t0) * 1000, 4)))
        if name == "make_reservation" and phone:
            with contextlib.suppress(orjson.JSONDecodeError, TypeError):
                if orjson.loads(item.get("output") or "{}").get("ok") is True:
                    self.booked.append(phone)

    def _arguments(self, name: str, n: int) -> tuple[dict[str, Any], str]:
        if name == "make_reservation":
            phone = f"+6581{n % 1_000_000:06d}"
            day = dt.datetime.now(TIMEZONE).date() + dt.timedelta(days=7)
            args = {
                "name": NAME,
                "phone_number": phone,
                "date": day.isoformat(),
                "time": "19:00",
                "party_size": 2,
            }
            return args, phone
        phone = self.booked[n % len(self.booked)] if self.booked else "+6580000000"
        return {"phone_number": phone, "name": NAME}, ""

    async def _tool_call(self, ws: ServerConnection, text: str) -> None:
        name = "lookup_reservation" if "lookup" in text else "make_reservation"
        n = next(self.ids)
        response_id, item_id, call_id = f"resp_{n}", f"item_{n}", f"call_{n}"
        args, phone = self._arguments(name, n)
        arguments = orjson.dumps(args).decode()
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": call_id,
            "arguments": "",
        }
        await ws.send(self._event(p.RESPONSE_CREATED, response=_response(response_id, [])))
        await ws.send(
            self._event(p.OUTPUT_ITEM_ADDED, response_id=response_id, output_index=0, item=item)
        )
        done = self._event(
            p.FUNCTION_ARGS_DONE,
            response_id=response_id,
            item_id=item_id,
            output_index=0,
            call_id=call_id,
            name=name,
            arguments=arguments,
        )
        self.function_calls += 1
        self.pending[call_id] = (name, time.perf_counter(), phone)
        await ws.send(done)
        finished = {**item, "status": "completed", "arguments": arguments}
        await ws.send(
            self._event(p.OUTPUT_ITEM_DONE, response_id=response_id, output_index=0, item=finished)
        )
        await ws.send(
            self._event(p.RESPONSE_DONE, response=_response(response_id, [finished], "completed"))
        )

    async def _spoken_reply(self, ws: ServerConnection) -> None:
        response_id = self._id("resp")
        await ws.send(self._event(p.RESPONSE_CREATED, response=_response(response_id, [])))
        await ws.send(
            self._event(p.RESPONSE_DONE, response=_response(response_id, [], "completed"))
        )


def _session() -> dict[str, Any]:
    return {"type": "realtime", "object": "realtime.session", "model": "gpt-realtime"}


def _response(response_id: str, output: list[Any], status: str = "in_progress") -> dict[str, Any]:
    usage = {"total_tokens": 10, "input_tokens": 8, "output_tokens": 2}
    return {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "output": output,
        "usage": usage if status == "completed" else None,
    }


async def serve_fake_model(port: int) -> None:
    model = FakeModel()
    async with serve(
        model.session,
        "127.0.0.1",
        port,
        process_request=model.http,
        max_size=MAX_SIZE,
        compression=None,
        server_header=None,
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        print(f"fake model listening on http://127.0.0.1:{bound}/v1", flush=True)
        await server.serve_forever()


# --- the callers ------------------------------------------------------------------------------


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


async def start_fake_model() -> tuple[asyncio.subprocess.Process, int]:
    return await spawn_listening("the fake model", "-m", "bench.tools_bench", "--fake-model")


async def tools_session(admin: str, calls_list: list[int], audio: bool) -> list[dict[str, Any]]:
    rows = []
    async with throwaway_database(admin) as dsn:
        model, model_port = await start_fake_model()
        try:
            server, port = await start_server(dsn, model_port)
            try:
                url = f"ws://127.0.0.1:{port}{MODEL_QUERY}"
                for tool in TOOLS:  # make first: lookups find what it booked
                    for calls in calls_list:
                        rounds, interval = (100, 0.1) if calls == 1 else (10, 1.0)
                        row = await run_callers(
                            url, model_port, tool, calls, rounds, interval, audio
                        )
                        rows.append(row)
                        print(
                            f"  {tool} x{calls}: p50 {row.get('p50_ms')} ms,"
                            f" p99 {row.get('p99_ms')} ms, n {row.get('n')}",
                            flush=True,
                        )
                        await wait_model_idle(model_port)
            finally:
                await stop(server)
        finally:
            await stop(model)
    return rows


def evaluate_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for tool in TOOLS:
        row = next((r for r in rows if r["tool"] == tool and r["calls"] == 100), None)
        value = row.get("p99_ms") if row else None
        out[f"{tool}_round_trip_p99_ms_at_100"] = {
            "target": TARGET_P99_MS,
            "value": value,
            "met": None if value is None else value <= TARGET_P99_MS,
            "how": "args.done sent -> function_call_output received, at the model; <= target",
        }
    return out


COLUMNS = [
    "tool",
    "calls",
    "n",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "handler_p50_ms",
    "handler_p99_ms",
    "relay_part_p50_ms",
    "tool_calls_per_s",
    "outcomes",
    "failures",
]


def run(calls_list: list[int], audio: bool = True) -> dict[str, Any]:
    started, at_start = time.monotonic(), machine()  # load average before our own load
    with server_dsn() as admin:
        rows = asyncio.run(tools_session(admin, calls_list, audio))
    targets = evaluate_targets(rows)
    data = {
        "machine": at_start,
        "settings": {
            "calls": calls_list,
            "audio_while_calling": audio,
            "pacing": "1 call: 100 rounds 0.1 s apart; N calls: 10 rounds 1 s apart each, "
            "phase-spread",
        },
        "rows": rows,
        "targets": targets,
        "duration_s": round(time.monotonic() - started, 1),
    }
    print_table(
        "Tools: model's function_call_arguments.done -> relay's function_call_output, at the model",
        rows,
        COLUMNS,
    )
    print_targets("Tool targets", targets)
    print(f"\nwritten {write_results('tools', data)}")
    return data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tools_bench", description=__doc__)
    parser.add_argument("--fake-model", action="store_true", help="run only the fake model")
    parser.add_argument("--port", type=int, default=0, help="fake model port")
    parser.add_argument("--tool-calls", default="1,100", help="concurrent calls, e.g. 1,100")
    parser.add_argument("--no-audio", action="store_true", help="callers send no audio")
    args = parser.parse_args(argv)
    if args.fake_model:
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve_fake_model(args.port))
        else:
            uvloop.run(serve_fake_model(args.port))
        return
    run(parse_calls(args.tool_calls), audio=not args.no_audio)


if __name__ == "__main__":
    main()
