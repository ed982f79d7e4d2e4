"""Each process's sender: claims due texts from the outbox and sends them through Twilio.

Claiming is `FOR UPDATE SKIP LOCKED` with a lease (`MESSAGE_LEASE_S`), so any number of
processes share the work and none sends a row another holds. The sender looks for due rows every
`MESSAGE_POLL_S` (texts, reminders and retries alike; polling stays cheap and even under a burst
of bookings, where waking on each one would not), and at once when `wake()` is called. A failed
attempt is retried after `MESSAGE_RETRY_S`, doubling each time, on Twilio 5xx, 429, timeouts and
connection trouble; a row that ran out of `MESSAGE_MAX_ATTEMPTS` is `failed`. Without the account
settings every due row is `skipped_not_configured` (its text rendered, so staff see what would
have gone).

"Now" is `clock()`, an attribute the tests replace to make reminders due without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from server.book import outbox
from server.book.db_errors import DatabaseUnavailable
from server.book.outbox import Message
from server.logs import mask_phones
from server.messaging import texts
from server.messaging.twilio_sms import SendFailed, TwilioSms
from server.settings import Settings
from server.web.public_url import configured_base

log = logging.getLogger("server.messaging")

BATCH = 20  # rows claimed at once (and sent concurrently) by one sender
# Outcomes written at once: the sender shares the process's pool with the bookings, and must
# never hold more than a few of its connections (claiming takes one more).
WRITERS = 2
MAX_BACKOFF_S = 3600.0
STATUS_PATH = "/twilio/sms-status"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Sender:
    def __init__(self, settings: Settings, clock: Callable[[], dt.datetime] = utc_now):
        self.settings = settings
        self.clock = clock
        self.base = configured_base(settings)
        self.lease = dt.timedelta(seconds=settings.message_lease_s)
        self.twilio: TwilioSms | None = None
        self._pool: asyncpg.Pool | None = None
        self._key = b""
        self._wake = asyncio.Event()
        self._writers = asyncio.Semaphore(WRITERS)
        self._tasks: list[asyncio.Task[None]] = []
        self.passes = 0  # finished passes over the outbox (tests wait on it, with `passed`)
        self._passed = asyncio.Condition()

    async def start(self, pool: asyncpg.Pool, key: bytes) -> None:
        self._pool, self._key = pool, key
        if self.settings.sms_configured:
            self.twilio = TwilioSms(self.settings)  # inside the running loop, as the library asks
        self._tasks.append(asyncio.create_task(self._run(), name="sms-sender"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.twilio is not None:
            await self.twilio.close()
            self.twilio = None

    def wake(self) -> None:
        """Look for due texts now (a booking change, or a test that moved the clock)."""
        self._wake.set()

    async def passed(self, count: int = 1) -> None:
        """Wait until `count` more full passes have finished (each claims every due row)."""
        async with self._passed:
            target = self.passes + count
            self.wake()
            await self._passed.wait_for(lambda: self.passes >= target)

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.run_once() == BATCH:
                    pass  # more may be due: no waiting between full batches
            except DatabaseUnavailable as exc:
                log.warning("outbox: database unavailable (%s); trying again", exc)
            except Exception:
                log.exception("outbox: a pass failed; trying again")
            async with self._passed:
                self.passes += 1
                self._passed.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.message_poll_s)

    async def run_once(self) -> int:
        """Claim up to one batch of due rows and settle each; how many were claimed."""
        assert self._pool is not None
        claimed = await outbox.claim(
            self._pool, self.clock(), BATCH, self.settings.message_max_attempts, self.lease
        )
        # Every claimed row is settled (or left to its lease) before the pass ends, whatever
        # happens to the others; then the first failure is raised for the loop to log.
        outcomes = await asyncio.gather(
            *(self._settle(message) for message in claimed), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return len(claimed)

    async def _settle(self, message: Message) -> None:
        assert self._pool is not None
        pool = self._pool
        link = texts.manage_url(self.base, self._key, message.booking, message.reservation_id)
        body = message.body or texts.render(message, self.settings.restaurant_name, link)
        who = mask_phones(message.phone_number)
        if message.kind == "reminder" and self._started(message):
            await self._finish(message, "dropped", body, "the booking had begun")
            return
        if message.opted_out:
            await self._finish(message, "skipped_opted_out", body, None)
            return
        if self.twilio is None:
            await self._finish(message, "skipped_not_configured", body, None)
            return
        callback = (
            self.settings.public_base_url.rstrip("/") + STATUS_PATH
            if self.settings.public_base_url
            else None
        )
        try:
            sid = await self.twilio.send(message.phone_number, body, callback)
        except SendFailed as failure:
            await self._failed(message, body, failure)
            return
        await self._write(outbox.mark_sent(pool, message, sid, body))
        log.info("text %s (%s) sent to %s: %s", message.id, message.kind, who, sid)

    async def _failed(self, message: Message, body: str, failure: SendFailed) -> None:
        assert self._pool is not None
        who = mask_phones(message.phone_number)
        if failure.opted_out:
            await self._write(outbox.opt_out(self._pool, message.phone_number))
            await self._finish(message, "skipped_opted_out", body, str(failure))
        elif failure.retry and message.attempts < self.settings.message_max_attempts:
            wait = min(self.settings.message_retry_s * 2 ** (message.attempts - 1), MAX_BACKOFF_S)
            at = self.clock() + dt.timedelta(seconds=wait)
            await self._write(outbox.mark_retry(self._pool, message, at, body, str(failure)))
            log.warning(
                "text %s to %s: attempt %d failed (%s); retrying in %.0f s",
                message.id,
                who,
                message.attempts,
                failure,
                wait,
            )
        else:
            await self._finish(message, "failed", body, str(failure))
            log.warning("text %s to %s failed for good: %s", message.id, who, failure)

    async def _finish(self, message: Message, status: str, body: str, error: str | None) -> None:
        await self._write(outbox.finish(self._pool, message, status, body, error))

    async def _write(self, step: Awaitable[object]) -> None:
        async with self._writers:
            await step

    def _started(self, message: Message) -> bool:
        booking = message.booking
        day = dt.date.fromisoformat(booking["reservation_date"])
        clock = dt.time.fromisoformat(booking["reservation_time"])
        start = dt.datetime.combine(day, clock, tzinfo=self.settings.timezone)
        return start <= self.clock()
