"""The live feed: every booking change, made by any process, pushed to this process's listeners.

Each write appends a history row and NOTIFYs its seq in the same transaction
(`reservations._record`). Each process keeps one dedicated connection LISTENing (not a pooled
one: a pool would hand it to a request), and on every notification reads the rows after the last
one it has seen -- from PostgreSQL, never from memory, so it does not matter which process or host
made the change. The connection reconnects by itself with backoff; on (re)connecting and every
`DB_LISTEN_CHECK_S` the feed also catches up from the table, so a notification lost while the
link was down costs a delay, never a change.

Subscribers (the staff page's server-sent events) get rows in seq order through a bounded queue;
one that falls too far behind is dropped and resumes from the table with its `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field

import asyncpg

from server.book import reservations
from server.book.db_errors import OUTAGE_ERRORS, DatabaseUnavailable
from server.book.reservations import HISTORY_CHANNEL, HistoryEntry
from server.settings import Settings

log = logging.getLogger("server.live_feed")

QUEUE_SIZE = 1000  # rows a subscriber may fall behind before it is dropped
PAGE = 500  # rows read per query while catching up
APPLICATION_NAME = "reservations-live-feed"  # how the LISTEN connection shows in pg_stat_activity


@dataclass(eq=False)
class Subscription:
    """One listener's queue; None in it, or `ended`, means its stream should end now."""

    queue: asyncio.Queue[HistoryEntry | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )
    ended: bool = False  # fell behind, or the server is stopping: the client resumes later

    def end(self) -> None:
        self.ended = True
        with contextlib.suppress(asyncio.QueueFull):  # full: the reader finds `ended` soon
            self.queue.put_nowait(None)


_feeds: weakref.WeakSet[LiveFeed] = weakref.WeakSet()


def end_all_streams() -> None:
    """End every live-feed stream of this process, so a shutdown need not wait for them
    (uvicorn waits for open responses). Clients reconnect and resume where they were."""
    for feed in list(_feeds):
        feed.end_streams()


class LiveFeed:
    """One per process: the LISTEN connection, a reader of new history rows, the subscribers."""

    def __init__(self, dsn: str, pool: asyncpg.Pool, settings: Settings):
        self._dsn = dsn
        self._pool = pool
        self._settings = settings
        # Weak: a stream whose body never started (its client left at once) cannot leak one.
        self._subscribers: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_seq: int | None = None  # the newest row published; None until first read
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        _feeds.add(self)

    async def start(self) -> None:
        with contextlib.suppress(DatabaseUnavailable):
            self.last_seq = await reservations.latest_seq(self._pool)
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-feed-listen"),
            asyncio.create_task(self._read(), name="live-feed-read"),
        ]

    async def close(self) -> None:
        self.end_streams()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def end_streams(self) -> None:
        for subscription in list(self._subscribers):
            subscription.end()

    def _publish(self, entry: HistoryEntry) -> None:
        for subscription in list(self._subscribers):
            if subscription.ended:
                continue
            try:
                subscription.queue.put_nowait(entry)
            except asyncio.QueueFull:
                subscription.ended = True

    # --- the LISTEN connection ----------------------------------------------------------------

    async def _listen(self) -> None:
        """Keep one LISTEN connection up for the life of the process."""
        delay = 0.1
        while True:
            try:
                await self._listen_once()
                delay = 0.1  # it was up: the next attempt starts quickly again
            except OUTAGE_ERRORS as exc:
                log.warning("live feed: LISTEN connection down (%s); retrying in %.1fs", exc, delay)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.db_listen_retry_max_s)

    async def _listen_once(self) -> None:
        check_s = self._settings.db_listen_check_s
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self._settings.db_connect_timeout_s,
            server_settings={"application_name": APPLICATION_NAME},
        )
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(HISTORY_CHANNEL, self._notified)
            self.listening.set()
            self._wake.set()  # catch up on whatever was written while we were not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), check_s)
                    break
                # A link that hangs without closing shows up here, and a notification that was
                # lost anyway is made up for by reading the table.
                await asyncio.wait_for(conn.execute("SELECT 1"), check_s)
                self._wake.set()
            log.warning("live feed: LISTEN connection lost")
        finally:
            conn.terminate()

    def _notified(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()

    # --- reading new rows ---------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._catch_up()
            except DatabaseUnavailable as exc:
                # The listener's next check (or reconnection) wakes us again.
                log.warning("live feed: cannot read new changes yet: %s", exc)

    async def _catch_up(self) -> None:
        if self.last_seq is None:
            self.last_seq = await reservations.latest_seq(self._pool)
            return
        while True:
            rows = await reservations.changes_after(self._pool, self.last_seq, PAGE)
            for entry in rows:
                self._publish(entry)
                self.last_seq = entry.seq
            if len(rows) < PAGE:
                return
