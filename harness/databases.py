"""Throwaway PostgreSQL databases, shared by the test suite and the benchmarks.

With `DATABASE_URL` set, databases are made on that server; without it an embedded PostgreSQL
starts under `.data/<name>`. Either way each run gets its own database and drops it at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from server.book.database import start_embedded
from server.settings import PROJECT_ROOT


def with_database(dsn: str, name: str) -> str:
    """The same server's DSN, pointing at database `name`."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@contextlib.contextmanager
def server_dsn(data_name: str = "bench-pg") -> Iterator[str]:
    """DATABASE_URL's server if set, else an embedded one under `.data/<data_name>`.

    Shared by the benchmarks and the test suite: both make throwaway databases on it.
    """
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    embedded = start_embedded(PROJECT_ROOT / ".data" / data_name)
    try:
        yield embedded.uri
    finally:
        embedded.stop()


@contextlib.asynccontextmanager
async def throwaway_database(admin_dsn: str, prefix: str = "bench") -> AsyncIterator[str]:
    """A new empty database on the server of `admin_dsn`, dropped (even if in use) afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
