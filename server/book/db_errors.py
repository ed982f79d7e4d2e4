"""The one place that decides which database failures mean "the database went away".

Every statement of the product runs inside `outage_as_unavailable()`, so a failure caused by
PostgreSQL stopping, restarting, failing over or hanging becomes `DatabaseUnavailable` -- a JSON
503 over REST, `reservation.failed` with `database_unavailable` for the tools -- and never a 500.
Wrap the whole `async with pool.acquire()` block, not just the statement: the pool's `release`
resets the connection and raises the same errors when the server vanished under it.

Rule violations (unique, check constraints) and programming errors (syntax, missing column) are
not outages and are never mapped: they must stay loud.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached or did not answer in time; the caller may retry later."""


# Found by restarting PostgreSQL under two server processes and a burst of requests
# (tests/test_outage.py), and by reading asyncpg's exception tree:
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    # the socket: refused, reset, broken pipe, unreachable host, DNS failure
    OSError,
    # connect/acquire/command timeouts (asyncio.TimeoutError is TimeoutError on 3.11+)
    TimeoutError,
    # a connection closed under us, "another operation is in progress" on a connection whose
    # server went away mid-statement, ConnectionDoesNotExistError
    asyncpg.InterfaceError,
    # "cannot switch to state 12; another operation (2) is in progress": asyncpg's protocol
    # state after the server dropped the connection between two messages (in bind_execute,
    # and in the pool's release when it resets such a connection); ProtocolError is one too
    asyncpg.InternalClientError,
    # SQLSTATE class 08: connection failure, rejected, does not exist
    asyncpg.PostgresConnectionError,
    # class 57: admin/crash shutdown, "the database system is starting up" (CannotConnectNow),
    # a statement cancelled by the server's statement timeout
    asyncpg.OperatorInterventionError,
    # class 53: too many connections, disk full, out of memory
    asyncpg.InsufficientResourcesError,
    # 25006: after a failover the DSN may briefly reach a read-only standby
    asyncpg.ReadOnlySQLTransactionError,
)


@contextlib.contextmanager
def outage_as_unavailable() -> Iterator[None]:
    """Turn any outage error raised inside the block into `DatabaseUnavailable`."""
    try:
        yield
    except OUTAGE_ERRORS as exc:
        # Not every subclass of OSError/TimeoutError is an outage, but nothing else in a database
        # block raises them: they come from the socket.
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
