"""`python -m server [serve|migrate|seed] [--host H] [--port P] [--workers N]`."""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import logging
import socket
import sys
from types import FrameType

import uvicorn
from uvicorn.supervisors import Multiprocess

from server import logs
from server.clients import UVICORN_OPTIONS
from server.database import DatabaseUnreachable, open_database
from server.realtime.client_socket import uvicorn_ws_options
from server.realtime.relay import drain_all
from server.reservations import seed
from server.settings import Settings

log = logging.getLogger("server")


async def _migrate(settings: Settings) -> None:
    database = await open_database(settings)
    await database.close()
    print("migrations applied")


async def _seed(settings: Settings) -> None:
    database = await open_database(settings)
    try:
        for result in await seed(database.pool, settings.today()):
            r = result.reservation
            print(
                f"{result.outcome:9} {r.name:14} {r.reservation_date} {r.reservation_time:%H:%M}"
                f" party of {r.party_size}  #{r.confirmation_number}"
            )
    finally:
        await database.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", "seed"])
    parser.add_argument("--host", help="bind address (env HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (env PORT, default 8000)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    logs.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "seed":
            asyncio.run(_seed(settings))
        else:
            _serve(settings, args.workers)
    except DatabaseUnreachable as exc:
        log.error("%s", exc)
        return 2
    return 0


def _serve(settings: Settings, workers: int) -> None:
    config = uvicorn.Config(
        "server.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_config=None,  # our handler (server.logs) formats every line, uvicorn's included
        log_level=settings.log_level,
        **uvicorn_ws_options(),
        **UVICORN_OPTIONS,  # who the client is: TRUSTED_PROXIES decides, not uvicorn
        timeout_graceful_shutdown=settings.shutdown_grace_s + 5,
    )
    server = GracefulServer(config)
    if workers > 1:
        # As uvicorn.run does, but each worker runs our server class.
        Multiprocess(config, target=server.run, sockets=[_bind(settings)]).run()
    else:
        server.run()


def _bind(settings: Settings) -> socket.socket:
    """The listening socket the workers share.

    Made here rather than by uvicorn's `Config.bind_socket`, which leaves the protocol number 0:
    asyncio then never sets TCP_NODELAY on accepted connections, and every response waits about
    40 ms for the client's delayed ACK.
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.set_inheritable(True)
    return sock


class GracefulServer(uvicorn.Server):
    """uvicorn's server, but SIGTERM first ends calls politely.

    uvicorn alone would drop every WebSocket at once (code 1012). Here the relay first refuses
    new calls, tells each caller, lets tool calls in flight finish, and closes with 1012; then
    uvicorn stops as usual. A second signal skips the wait.
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
                await drain_all()
            finally:
                super(GracefulServer, self).handle_exit(sig, frame)

        def start() -> None:
            self._drain = loop.create_task(drain_then_exit())

        # A fresh context: the signal interrupts whatever task was running, and the shutdown
        # must not inherit that call's session id.
        loop.call_soon_threadsafe(start, context=contextvars.Context())


if __name__ == "__main__":
    sys.exit(main())
