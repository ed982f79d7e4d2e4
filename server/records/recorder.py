"""The call recorder: a `CallObserver` that keeps each call's log in memory and writes it in
batches from a task of its own.

The observer methods only touch memory (the core calls them from its read paths, which must
never wait for PostgreSQL). One flush task writes every changed log, at least every
`CALL_RECORD_FLUSH_S` and soon after a call ends, in one transaction with a timeout; the rows
of live calls with nothing new are only touched, which is their heartbeat. A failed write is
logged, counted and retried at the next flush: a database outage costs records, never calls.
On shutdown `close()` flushes once more, so a clean stop loses nothing.

Rows a dead process left `live` are marked `interrupted` by whoever starts next (and on every
sweep): a row is stale when it has not been written for `stale_after_s`, three flush intervals
plus the write timeout, by the database's clock, so hosts with skewed clocks agree and a slow
but living process is never taken for dead. If one was (cut off from the database longer than
that), its next flush writes the row back to `live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg

from server.realtime.session import Note
from server.records import store
from server.records.summary import CallLog, Prices
from server.settings import Settings

if TYPE_CHECKING:
    from server.call.core import Call

log = logging.getLogger("server.records")

SWEEP_EVERY_S = 3600.0  # stale rows and old transcripts, besides at start-up
MAX_PENDING_ENDED = 10_000  # ended calls kept for retry while the database is away
END_FLUSH_DELAY_S = 0.2  # calls ending together are written together

_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Recorder:
    """See the module docstring. `start()` once the pool is open, `close()` before it closes."""

    def __init__(self, settings: Settings, on_db_error: Callable[[str], None] | None = None):
        self.settings = settings
        self.prices = Prices.from_settings(settings)
        self.flush_s = settings.call_record_flush_s
        self.timeout = settings.db_command_timeout_s
        self.stale_after_s = 3 * self.flush_s + self.timeout
        self.keep_transcripts = settings.transcript_retention_days > 0
        self.on_db_error = on_db_error or (lambda operation: None)
        self.logs: dict[str, CallLog] = {}  # by record id: live calls, and ended ones unwritten
        self.pool: asyncpg.Pool | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()
        self._last_sweep = 0.0
        self.flushes = 0  # completed flushes, for anyone watching in a REPL

    # -- the observer: memory only -----------------------------------------------------------

    # Observers must never raise into the call: a surprise is logged and the call goes on.

    def call_started(self, call: Call) -> None:
        spec = call.spec
        self.logs[spec.record_id] = CallLog(
            id=spec.record_id,
            sid=spec.sid,
            channel=spec.channel,
            caller=spec.caller,
            started_at=call.started_at,
            keep_transcript=self.keep_transcripts,
        )

    def call_noted(self, call: Call, note: Note) -> None:
        entry = self.logs.get(call.spec.record_id)
        if entry is not None:
            try:
                entry.note(note, time.time())
            except Exception:
                log.exception("call record: %s note not kept", note.kind)

    def call_ended(self, call: Call) -> None:
        entry = self.logs.get(call.spec.record_id)
        if entry is None:
            return
        entry.end(call.ended_at or time.time(), call.end_reason)
        self._wake.set()
        ended = [key for key, value in self.logs.items() if value.ended]
        for key in ended[:-MAX_PENDING_ENDED]:  # the database has been away for a long time
            log.warning("call record %s dropped: too many unwritten records", key)
            del self.logs[key]

    # -- the writer --------------------------------------------------------------------------

    async def start(self, pool: asyncpg.Pool) -> None:
        """Sweep (stale rows, old transcripts), then flush in the background."""
        self.pool = pool
        await self.sweep()
        self._task = asyncio.create_task(self._run(), name="call-recorder")

    async def close(self) -> None:
        """Stop the background task and write what is left (bounded by the write timeout)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.pool is not None:
            await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_s):
                    await self._wake.wait()
                await asyncio.sleep(END_FLUSH_DELAY_S)  # let calls ending together batch up
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() - self._last_sweep >= SWEEP_EVERY_S:
                    await self.sweep()
            except Exception:  # a bug must not stop every later write
                log.exception("call records: flush failed")

    async def flush(self) -> bool:
        """Write every changed log and touch the others; True when the database took it all."""
        assert self.pool is not None
        async with self._flushing:
            changed = [entry for entry in self.logs.values() if entry.dirty]
            quiet = [key for key, entry in self.logs.items() if not entry.dirty]
            rows = [entry.row(self.prices) for entry in changed]
            for entry in changed:
                entry.dirty = False  # a note arriving during the write marks it again
            try:
                async with asyncio.timeout(self.timeout * 2):
                    await store.write(self.pool, rows, self.timeout)
                    await store.touch(self.pool, quiet, self.timeout)
            except _DB_ERRORS as exc:
                for entry in changed:
                    entry.dirty = True
                log.warning("call records not written (%d), retrying later: %s", len(rows), exc)
                self.on_db_error("call_records")
                return False
            except BaseException:
                # Cancelled mid-write (shutdown cancels the background flush): whatever this
                # write carried is written again by the next flush, `close()`'s last one.
                for entry in changed:
                    entry.dirty = True
                raise
            for entry in changed:
                if entry.ended and not entry.dirty:
                    self.logs.pop(entry.id, None)
            self.flushes += 1
            return True

    async def sweep(self) -> None:
        """Mark the rows of dead processes interrupted; purge transcripts past retention."""
        assert self.pool is not None
        self._last_sweep = time.monotonic()
        days = self.settings.transcript_retention_days
        try:
            async with asyncio.timeout(self.timeout * 2):
                interrupted = await store.mark_interrupted(
                    self.pool, self.stale_after_s, self.timeout
                )
                purged = await store.purge_transcripts(self.pool, days, self.timeout)
        except _DB_ERRORS as exc:
            log.warning("call records sweep failed, retrying later: %s", exc)
            self.on_db_error("call_records")
            return
        if interrupted:
            log.info("%d call record(s) left open by a dead process: interrupted", interrupted)
        if purged:
            log.info("transcripts of %d call(s) older than %d day(s) removed", purged, days)
