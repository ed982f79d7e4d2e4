"""Which failures count as "the database went away": the one mapping, class by class.

tests/test_outage.py restarts PostgreSQL for real under load; this checks the mapping itself,
including classes a restart produces only now and then, and that rule violations stay loud.
"""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from server.book.db_errors import DatabaseUnavailable, outage_as_unavailable
from server.book.live_feed import QUEUE_SIZE, LiveFeed
from server.book.reservations import HistoryEntry


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.ProtocolError("unexpected message"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only transaction"),
        asyncpg.PostgresConnectionError("connection failure"),
        ConnectionResetError(104, "Connection reset by peer"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_outage_errors_become_database_unavailable(error):
    with pytest.raises(DatabaseUnavailable, match=type(error).__name__) as caught:
        with outage_as_unavailable():
            raise error
    assert caught.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.CheckViolationError("check constraint"),
        asyncpg.UndefinedColumnError("column does not exist"),
        asyncpg.PostgresSyntaxError("syntax error"),
        ValueError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_rule_violations_and_bugs_are_not_outages(error):
    with pytest.raises(type(error)), outage_as_unavailable():
        raise error


def test_a_subscriber_that_falls_behind_is_ended_not_grown(settings):
    feed = LiveFeed("postgresql://unused", None, settings)  # type: ignore[arg-type]
    slow, fast = feed.subscribe(), feed.subscribe()
    at = dt.datetime.now(dt.UTC)
    for seq in range(1, QUEUE_SIZE + 2):
        feed._publish(HistoryEntry(seq, "+6598207272", "created", at, "rest", None, None, {}))
        if seq % 100 == 0:  # the fast one keeps up
            while not fast.queue.empty():
                fast.queue.get_nowait()
    assert slow.ended and slow.queue.qsize() == QUEUE_SIZE  # its stream ends; it resumes later
    assert not fast.ended
    feed.end_streams()  # shutdown: every stream is told to end, full queue or not
    queued = [fast.queue.get_nowait() for _ in range(fast.queue.qsize())]
    assert fast.ended and queued[-1] is None  # wakes a stream waiting on its queue
