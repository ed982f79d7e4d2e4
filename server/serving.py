"""How this app is served by uvicorn: its WebSocket settings, the graceful server, the workers.

Everything here goes through uvicorn's documented settings (`Config`'s `ws`, `ws_max_size`,
`ws_per_message_deflate`) and its public `Server`; several workers are our own small supervisor
that hands each process the same listening socket, so nothing depends on uvicorn's internals.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from server.access.clients import UVICORN_OPTIONS
from server.book.live_feed import end_all_streams
from server.call.switchboard import drain_all
from server.settings import Settings

log = logging.getLogger("server")

# uvicorn's `ws` setting; the README's performance section compares the implementations.
WS_IMPLEMENTATION = "websockets-sansio"
TRANSPORT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # the socket's own cap; the call core's is stricter
WORKER_STOP_S = 30.0  # after SIGTERM, how long the supervisor waits for a worker to finish


def uvicorn_ws_options() -> dict[str, Any]:
    """uvicorn's WebSocket settings, for `python -m server` and the test server alike."""
    return {
        "ws": WS_IMPLEMENTATION,
        "ws_max_size": TRANSPORT_MAX_FRAME_BYTES,
        "ws_per_message_deflate": False,  # browsers offer it; base64 audio is not worth the CPU
    }


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    from server.app import create_app

    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # our handler (server.logs) formats every line, uvicorn's included
        log_level=settings.log_level,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s) + 5,
        **uvicorn_ws_options(),
        **UVICORN_OPTIONS,  # who the client is: TRUSTED_PROXIES decides, not uvicorn
    )


class GracefulServer(uvicorn.Server):
    """uvicorn's server, but SIGTERM first ends calls politely.

    uvicorn alone would drop every WebSocket at once (code 1012). Here the switchboard first
    refuses new calls, tells each caller, lets tool calls in flight finish, and closes with 1012;
    then uvicorn stops as usual. A second signal skips the wait.
    """

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.draining = False
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.draining or self.should_exit:
            super().handle_exit(sig, frame)
            return
        self.draining = True
        loop = asyncio.get_event_loop()

        async def drain_then_exit() -> None:
            log.info("signal %d: ending calls before shutting down", sig)
            try:
                end_all_streams()  # the staff pages' live feeds reconnect to another process
                await drain_all()
            finally:
                super(GracefulServer, self).handle_exit(sig, frame)

        def start() -> None:
            self._drain = loop.create_task(drain_then_exit())

        # A fresh context: the signal interrupts whatever task was running, and the shutdown
        # must not inherit that call's session id.
        loop.call_soon_threadsafe(start, context=contextvars.Context())


def listening_socket(settings: Settings) -> socket.socket:
    """The listening socket, made here so that accepted connections get TCP_NODELAY.

    asyncio sets TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP; without it every
    response waits about 40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, workers: int) -> None:
    """Serve in this process, or in `workers` processes sharing one listening socket."""
    sock = listening_socket(settings)
    if workers <= 1:
        GracefulServer(uvicorn_config(settings)).run(sockets=[sock])
        return
    Supervisor(settings, sock, workers).run()


def _worker(settings: Settings, sock: socket.socket) -> None:
    """A worker process: its own event loop, pool, model client (and offline model)."""
    from server import logs

    logs.configure(settings.log_level, settings.log_format)
    GracefulServer(uvicorn_config(settings)).run(sockets=[sock])


def metrics_directory(settings: Settings) -> tuple[Path, bool]:
    """The workers' shared metrics directory, emptied; and whether it is ours to remove.

    prometheus_client's multiprocess mode: every worker writes its values to files there, and
    `/metrics` in any worker adds them up. Files of an earlier run would be added too, so the
    directory starts empty. The variable must be set before a worker imports prometheus_client.
    """
    configured = settings.prometheus_multiproc_dir
    if configured is None:
        return Path(tempfile.mkdtemp(prefix="voice-metrics-")), True
    configured.mkdir(parents=True, exist_ok=True)
    for stale in configured.glob("*.db"):
        stale.unlink()
    return configured, False


class Supervisor:
    """Starts the workers, replaces one that dies, and on SIGTERM/SIGINT stops them all.

    Each worker drains its own calls on SIGTERM (see `GracefulServer`); the supervisor forwards
    the signal and waits for them. It also owns the workers' metrics directory: set up before
    the first worker starts, a dead worker's live gauges marked dead, removed at the end.
    """

    def __init__(self, settings: Settings, sock: socket.socket, count: int):
        self.metrics_dir, self.own_metrics_dir = metrics_directory(settings)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)  # read by the workers
        settings = settings.model_copy(update={"prometheus_multiproc_dir": self.metrics_dir})
        self.settings, self.sock, self.count = settings, sock, count
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[Any] = []
        self.stopping = threading.Event()

    def start_one(self) -> Any:
        process = self.context.Process(
            target=_worker, args=(self.settings, self.sock), name="server-worker"
        )
        process.start()
        log.info("worker %d started", process.pid)
        return process

    def run(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.processes = [self.start_one() for _ in range(self.count)]
        while not self.stopping.wait(0.5):
            for index, process in enumerate(self.processes):
                if not process.is_alive() and not self.stopping.is_set():
                    log.warning(
                        "worker %d exited (%s); starting another", process.pid, process.exitcode
                    )
                    self.worker_gone(process.pid)
                    self.processes[index] = self.start_one()
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker drains its calls
        for process in self.processes:
            process.join(WORKER_STOP_S)
            if process.is_alive():
                process.kill()
                process.join()
            self.worker_gone(process.pid)
        self.sock.close()
        if self.own_metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def worker_gone(self, pid: int) -> None:
        """A dead worker's calls are no longer active (its counters still count)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.metrics_dir))

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping %d workers", sig, len(self.processes))
        self.stopping.set()
