"""Shared fixtures: a throwaway PostgreSQL database, a pool on it, and a live server on loopback.

With `DATABASE_URL` set (CI does) the tests create their own database on that server and drop it
at the end; without it they start the embedded PostgreSQL under `.data/test-pg`. Either way every
test talks to a real server over a real connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
import uvicorn
from starlette.applications import Starlette

from harness.databases import server_dsn, throwaway_database
from server.access.clients import UVICORN_OPTIONS
from server.app import create_app
from server.book.database import Database, open_database
from server.book.restaurant import default_profile
from server.serving import uvicorn_ws_options
from server.settings import Settings


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    with server_dsn("test-pg") as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def test_dsn(admin_dsn: str) -> AsyncIterator[str]:
    async with throwaway_database(admin_dsn, "reservations_test") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def settings(test_dsn: str) -> Settings:
    return Settings(
        database_url=test_dsn,
        db_startup_wait_s=2.0,
        # Every test talks from 127.0.0.1, many calls and requests a minute: the per-client
        # limits are off here, and the tests of the limits set small ones.
        max_calls_per_client=0,
        max_new_calls_per_min=0,
        max_requests_per_min=0,
        _env_file=None,  # type: ignore[call-arg]  # a developer's .env must not leak into tests
    )


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = await open_database(settings)
    try:
        yield db
    finally:
        await db.close()


# What the shared `live_server` caches of the profile is reset with the stored one.
_SHARED_APPS: list[Starlette] = []

RESET_BOOK_SQL = "TRUNCATE reservations, reservation_history, table_holds"
STORE_PROFILE_SQL = (
    "INSERT INTO restaurant (id, profile) VALUES (1, $1)"
    " ON CONFLICT (id) DO UPDATE SET profile = EXCLUDED.profile, updated_at = now()"
)


async def reset_book(pool: asyncpg.Pool, settings: Settings) -> None:
    """Everything the book owns back to a fresh start: no bookings, history or table holds, and
    the profile a fresh server stores (`always`, the settings' name and timezone), cached ones
    included, so no test depends on what an earlier one left."""
    profile = default_profile(settings)
    await pool.execute(RESET_BOOK_SQL)
    await pool.execute(STORE_PROFILE_SQL, profile.to_json())
    for app in _SHARED_APPS:
        app.state.profile_cache.current = profile


@pytest.fixture
async def pool(database: Database, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """The session pool on an empty book (reset again afterwards, for tests without it)."""
    await reset_book(database.pool, settings)
    yield database.pool
    await reset_book(database.pool, settings)


def free_socket(port: int = 0) -> socket.socket:
    """A bound loopback socket: the port is known before the server starts."""
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # so, and without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class _Server(uvicorn.Server):
    """uvicorn that tells us when start-up (lifespan included) has finished."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:PORT
    ws_url: str  # ws://127.0.0.1:PORT
    settings: Settings
    app: Starlette


@contextlib.asynccontextmanager
async def serve_asgi(
    app: object, lifespan: str = "on", port: int = 0
) -> AsyncIterator[tuple[int, uvicorn.Server]]:
    """Run an ASGI app under uvicorn, configured as `python -m server` is, on a loopback port."""
    sock = free_socket(port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, **uvicorn_ws_options(), **UVICORN_OPTIONS
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not server.ready.is_set():
        ready.cancel()
        if task.done():
            task.result()  # start-up failed: raise its error
        raise RuntimeError("server did not start within 30 s")
    try:
        yield port, server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@contextlib.asynccontextmanager
async def serve_app(settings: Settings, port: int = 0) -> AsyncIterator[LiveServer]:
    """Run `create_app(settings)` under uvicorn on a loopback port for the block's duration
    (`port` 0: any free one; a given port lets a test restart a server where it was)."""
    app = create_app(settings)
    async with serve_asgi(app, port=port) as (bound, _):
        try:
            yield LiveServer(f"http://127.0.0.1:{bound}", f"ws://127.0.0.1:{bound}", settings, app)
        finally:
            # As on SIGTERM: open live-feed streams end, or uvicorn would wait for them.
            app.state.live_feed.end_streams()


@pytest.fixture(scope="session")
async def live_server(settings: Settings, database: Database) -> AsyncIterator[LiveServer]:
    async with serve_app(settings) as live:
        _SHARED_APPS.append(live.app)
        try:
            yield live
        finally:
            _SHARED_APPS.remove(live.app)
