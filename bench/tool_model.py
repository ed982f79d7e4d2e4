"""The tool benchmark's fake model: just enough of the GA Realtime protocol to time a tool call.

`session.created` on connect, `session.updated` for every `session.update`, echoes
`input_audio_buffer.append` as `response.output_audio.delta` (so calls can carry audio load), and
on `response.create` after a user text item naming a tool it emits `response.created`,
`response.output_item.added` (function_call), `response.function_call_arguments.done`
(timestamped), `response.output_item.done`, `response.done` -- as one burst, like the API. A
`response.create` that follows a function_call_output (the relay's follow-up) gets a plain
`response.created` + `response.done`. The round trip is timed here, in one process, from sending
the arguments to the output arriving, so no clocks are compared across processes.
`GET /samples` returns the timings, `GET /reset` clears them, `GET /stats` counts sessions.
It runs in its own process: `python -m bench.tools_bench --fake-model`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bench.calls import MAX_SIZE
from offline_model.echo import echo_frame
from protocol import realtime as p

NAME = "Ada Lovelace"
TIMEZONE = ZoneInfo("Asia/Singapore")
_APPEND = '{"type":"input_audio_buffer.append"'


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
