"""The I/O edge: a ``websockets`` server speaking the Realtime API at ``/v1/realtime``.

Everything protocol-shaped lives in ``conversation``; this module only moves frames. Per
connection there is one reader (this handler), one writer draining an ordered outbox, at most
one task streaming the current response with pacing, and a task per utterance waiting for the
recogniser's worker processes (``speech``). Events are put in the outbox the moment they are
decided, so the order on the wire is the order of decisions, and a disconnect cancels every task
of the session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from datetime import date, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from protocol import realtime as p

from .conversation import Conversation, Output, Transcribe
from .echo import echo_frame
from .outbox import Outbox
from .response import ResponseRun
from .sip import SipPlane
from .speech import Recognizer, RecognizerBusy
from .stats import Stats

__all__ = ["OfflineModel", "start"]

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024 * 1024
REALTIME_PATH = "/v1/realtime"
STATS_PATHS = ("/stats", "/v1/stats")
DEFAULT_TIMEZONE = "Asia/Singapore"


class OfflineModel:
    """A local stand-in for the OpenAI Realtime API (GA); start with ``await model.start()``.

    Options: ``api_key`` (require ``Authorization: Bearer <key>``, else HTTP 401), ``echo``
    (append → identical ``output_audio.delta``, for relay benchmarks), ``timezone`` (for
    "today"/"tomorrow"; default ``$RESTAURANT_TIMEZONE`` or Asia/Singapore), ``pace`` (seconds
    between 100 ms audio chunks; 0.025 = 4x real time), ``send_timeout`` (a client that stops
    reading for this long is disconnected), ``rate_limits`` (also send ``rate_limits.updated``
    after each ``response.done`` as the API does; off by default to keep event sequences short),
    ``listen`` (recognise speech with pocketsphinx in ``asr_workers`` processes, default half the
    cores; off, a spoken turn is answered "please type"), ``asr_max_pending`` (utterances that
    may wait for a worker before new ones are refused).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        echo: bool = False,
        timezone: str | tzinfo | None = None,
        pace: float = 0.025,
        send_timeout: float = 30.0,
        rate_limits: bool = False,
        listen: bool = True,
        asr_workers: int | None = None,
        asr_max_pending: int | None = None,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.echo = echo
        self.pace = pace
        self.send_timeout = send_timeout
        self.rate_limits = rate_limits
        if not isinstance(timezone, tzinfo):
            timezone = ZoneInfo(
                timezone or os.environ.get("RESTAURANT_TIMEZONE") or DEFAULT_TIMEZONE
            )
        self.timezone = timezone
        self._requested_port = port
        self._stats = Stats()
        self._sessions_changed = asyncio.Condition()
        self._server: Server | None = None
        self.sip = SipPlane(
            host=host, api_key=api_key, stats=self._stats, today=self.today, pace=pace
        )
        self.recognizer = Recognizer(asr_workers, asr_max_pending) if listen and not echo else None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> OfflineModel:
        self._server = await serve(
            self._session,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=MAX_FRAME,
            server_header=None,
        )
        await self.sip.start()
        return self

    async def close(self) -> None:
        """Stop listening, close every session (code 1001) and wait for their tasks."""
        await self.sip.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.recognizer is not None:
            self.recognizer.close()

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> OfflineModel:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the offline model is not running")
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """What to give the SDK as ``base_url`` (it appends ``/realtime?model=…``)."""
        return f"http://{self._display_host()}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._display_host()}:{self.port}{REALTIME_PATH}"

    @property
    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    async def wait_for_sessions(self, active: int = 0) -> None:
        """Wait until exactly ``active`` sessions are open (e.g. to prove a disconnect cleaned up).

        Callers bound it with ``asyncio.timeout``.
        """
        async with self._sessions_changed:
            await self._sessions_changed.wait_for(lambda: self._stats.sessions_active == active)

    async def _count_session(self, delta: int) -> None:
        self._stats.sessions_active += delta  # first, so a cancelled notify cannot lose it
        async with self._sessions_changed:
            self._sessions_changed.notify_all()

    def _display_host(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "localhost") else self.host

    def today(self) -> date:
        return datetime.now(self.timezone).date()

    # --- handshake -------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Route plain HTTP (``/stats``), then check path, ``model`` and API key like the API."""
        url = urlsplit(request.path)
        if url.path in STATS_PATHS:
            return _json_response(connection, 200, self._stats.snapshot())
        if url.path != REALTIME_PATH:
            return connection.respond(404, "Not Found\n")
        if "call_id" in parse_qs(url.query):  # a SIP call's sideband
            return self.sip.sideband_refusal(connection, request)
        model = (parse_qs(url.query).get("model") or [""])[0]
        authorization = request.headers.get("Authorization")
        self._stats.last_model = model or None
        self._stats.last_authorization_seen = authorization is not None
        if not model:
            return _json_response(
                connection, 400, _api_error("missing_model", "Missing required parameter: 'model'.")
            )
        if self.api_key is not None and authorization != f"Bearer {self.api_key}":
            message = "Incorrect API key provided."
            if authorization is None:
                message = "You didn't provide an API key (Authorization: Bearer <key>)."
            return _json_response(connection, 401, _api_error("invalid_api_key", message))
        return None

    # --- one session -----------------------------------------------------------------------

    async def _session(self, ws: ServerConnection) -> None:
        stats = self._stats
        stats.sessions_opened += 1
        await self._count_session(+1)
        path = ws.request.path if ws.request is not None else ""
        model = (parse_qs(urlsplit(path).query).get("model") or ["gpt-realtime"])[0]
        call = self.sip.call_of(ws)
        conversation = (
            call.conversation
            if call and call.conversation
            else Conversation(
                model=model,
                stats=stats,
                today=self.today,
                pace=self.pace,
                rate_limits=self.rate_limits,
                listen=self.recognizer is not None,
            )
        )
        outbox = self.sip.outbox(call) if call else Outbox()
        writer = asyncio.create_task(outbox.drain_to(ws, self.send_timeout))
        streams: dict[asyncio.Task[None], ResponseRun] = {}
        listening: set[asyncio.Task[None]] = set()

        def dispatch(outputs: list[Output]) -> None:
            """Send events, start response streams and recogniser jobs, in decision order."""
            for out in outputs:
                if isinstance(out, ResponseRun):
                    streams[asyncio.create_task(self._stream(out, outbox))] = out
                elif isinstance(out, Transcribe):
                    task = asyncio.create_task(self._listen(out, conversation, dispatch))
                    listening.add(task)
                    task.add_done_callback(listening.discard)
                else:
                    if out["type"] == p.SPEECH_STARTED and self.recognizer is not None:
                        self.recognizer.prepare()  # the worker starts while the caller talks
                    outbox.put(orjson.dumps(out))
            for task, run in list(streams.items()):
                if run.finished:  # done, or cancelled by this event: stop its sleep
                    task.cancel()
                    del streams[task]

        try:
            for event in conversation.opening():
                outbox.put(orjson.dumps(event))
            async for raw in self.sip.frames(call, ws) if call else ws:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                if self.echo and (echoed := echo_frame(text)) is not None:
                    frame, size = echoed
                    stats.audio_bytes_received += size
                    stats.audio_bytes_sent += size
                    outbox.put(frame)
                else:
                    dispatch(conversation.handle_raw(text))
                if writer.done():
                    break
                await outbox.room()
        except ConnectionClosed:
            pass
        finally:
            tasks = [writer, *streams, *listening]
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, ConnectionClosed):
                    log.warning("offline model session task failed: %r", result)
            await self._count_session(-1)

    async def _listen(
        self,
        job: Transcribe,
        conversation: Conversation,
        dispatch: Callable[[list[Output]], None],
    ) -> None:
        """Recognise one utterance in a worker process, then let the conversation answer it."""
        assert self.recognizer is not None
        heard_as = "general"
        try:
            heard = await self.recognizer.transcribe(job.pcm, job.rate, job.listen)
        except RecognizerBusy:
            self._stats.transcriptions_refused += 1
            text = None
        except Exception:  # a dead worker must cost one turn, not the session
            log.exception("offline model recogniser failed")
            self._stats.transcriptions_refused += 1
            text = None
        else:
            self._stats.transcriptions += 1
            self._stats.transcription_cpu_s += heard.cpu_s
            text, heard_as = heard.text, heard.heard_as
        dispatch(conversation.transcribed(job.item_id, text, heard_as))

    async def _stream(self, run: ResponseRun, outbox: Outbox) -> None:
        """Send a response's events, sleeping on its pauses against a drift-free schedule."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            for step in run.steps():
                if isinstance(step, float):
                    due += step
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    await outbox.room()
                else:
                    outbox.put(orjson.dumps(step))
        except Exception:
            log.exception("offline model response stream failed")
            for event in run.cancel("client_cancelled"):
                outbox.put(orjson.dumps(event))


def _api_error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


def _json_response(connection: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(body))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    response.headers["Access-Control-Allow-Origin"] = "*"  # pages fetch /stats cross-origin
    response.headers["Cache-Control"] = "no-store"
    return response


async def start(host: str = "127.0.0.1", port: int = 0, **options: Any) -> OfflineModel:
    """Start an offline model; ``options`` are ``OfflineModel``'s keyword arguments."""
    return await OfflineModel(host, port, **options).start()
