"""Whether a new call may open a (billed) model session, and its place until the call ends.

One entry point for every endpoint that opens model sessions for a client:

    async with admission.admit(websocket, also=endpoint_refusal) as refusal:
        if refusal is not None:
            ... send refusal.error, close with refusal.code (refusal.reason) ...
            return
        ... run the call ...

In order: the browser's Origin (same-origin by default), the access token, the endpoint's own
checks (`also`: draining, capacity), then the per-client limits -- first this process's memory
(`ratelimit.CallLimiter`, free), then PostgreSQL (`call_slots`, shared by every process) -- and
the endpoint's checks once more, with no await between them and the call starting. Only a call
that passes them all is counted, and its place is given back when the block ends, whatever ends
it. Every refusal is logged with the client's address and Origin. Phone streams and SIP webhooks
(all of a carrier's calls come from a few addresses) do not come through here: they meet only
their endpoint's own checks.

If PostgreSQL cannot answer within `SHARED_TIMEOUT_S`, the call is judged by this process's
counts alone (a warning is logged): a database hiccup must not stop calls, and the per-process
limits still hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import asyncpg
from starlette.requests import HTTPConnection

from protocol import realtime as p
from server.access import clients, credentials
from server.access.call_slots import DB_ERRORS, RENEW_EVERY_S, SharedCallSlots
from server.access.ratelimit import CallLimiter, Clock, Limited
from server.settings import Settings

log = logging.getLogger("server.admission")

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
SHARED_TIMEOUT_S = 1.0  # the shared count's answer, before falling back to this process's


class Refusal(NamedTuple):
    """Why a call is not taken: the close code, the `error` event to send first, the reason."""

    code: int
    error: dict[str, Any]
    reason: str


def origin_refusal() -> Refusal:
    error = p.error_event("origin_not_allowed", "This page's origin may not connect.")
    return Refusal(CLOSE_POLICY, error, "origin not allowed")


def token_refusal() -> Refusal:
    error = p.error_event("unauthorized", "A valid access token is required.")
    return Refusal(CLOSE_POLICY, error, "missing or invalid access token")


def limit_refusal(limited: Limited) -> Refusal:
    """The refusal for a per-client limit: its own code, close 1013 (it lifts with time)."""
    if limited.limit == "too_many_calls":
        message = "Too many calls from your network at once. End one, then call again."
        reason = "too many calls from this client"
    else:
        message = (
            "Too many new calls from your network. "
            f"Try again in {limited.retry_after_header} seconds."
        )
        reason = "too many new calls from this client"
    error = p.error_event(limited.limit, message)
    return Refusal(CLOSE_TRY_AGAIN, error, reason)


def _no_refusal() -> Refusal | None:
    return None


class Admission:
    """Owns the per-client counts of one process; `start` it with the pool, `close` at the end."""

    def __init__(self, settings: Settings, clock: Clock = time.monotonic):
        self.settings = settings
        self.local = CallLimiter(
            settings.max_calls_per_client, settings.max_new_calls_per_min, clock
        )
        self.shared: SharedCallSlots | None = None
        self.slots: set[int] = set()  # this process's live rows in call_admissions
        self._renewer: asyncio.Task[None] | None = None

    async def start(self, pool: asyncpg.Pool) -> None:
        """Share the limits through `pool`'s database (nothing to do when they are off)."""
        if not self.local.enabled:
            return
        self.shared = SharedCallSlots(
            pool, self.settings.max_calls_per_client, self.settings.max_new_calls_per_min
        )
        self._renewer = asyncio.create_task(self._renew_forever(), name="call-slot leases")

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self.shared is not None and self.slots:
            await self._release(set(self.slots))

    def gate(self, conn: HTTPConnection) -> Refusal | None:
        """Origin and token: who may call at all (no counting, no I/O)."""
        settings = self.settings
        own = clients.scope_own_origin(conn.scope, settings.proxies, settings.public_origin)
        if not credentials.origin_allowed(conn.headers.get("origin"), own, settings.origins):
            return origin_refusal()
        token = credentials.socket_token(conn.headers, conn.query_params)
        if not credentials.token_ok(token, settings):
            return token_refusal()
        return None

    @contextlib.asynccontextmanager
    async def admit(
        self, conn: HTTPConnection, also: Callable[[], Refusal | None] | None = None
    ) -> AsyncIterator[Refusal | None]:
        """Yields None while the call holds its place, or the `Refusal` to give the caller.

        `also` (the endpoint's own checks) runs once before the counting, to refuse cheaply, and
        once after it: the counting awaits PostgreSQL, and no await may separate the endpoint's
        capacity check from the call starting, or calls admitted meanwhile would overrun it.
        """
        client = clients.scope_client(conn.scope, self.settings.proxies)
        endpoint = also or _no_refusal
        refusal = self.gate(conn) or endpoint()
        counted = False
        slot: int | None = None
        if refusal is None and self.local.enabled:
            limited, slot = await self._count(client)
            if limited is not None:
                refusal = limit_refusal(limited)
            else:
                counted = True
                refusal = endpoint()
                if refusal is not None:
                    await self._uncount(client, slot)
                    counted, slot = False, None
        if refusal is not None:
            origin = conn.headers.get("origin") or "-"
            log.warning("refused a call from %s (origin %s): %s", client, origin, refusal.reason)
            yield refusal
            return
        try:
            yield None
        finally:
            if counted:
                self.local.end(client)
            if slot is not None:
                self.slots.discard(slot)
                await self._release({slot})

    async def _count(self, client: str) -> tuple[Limited | None, int | None]:
        """Count a new call of `client` here and in PostgreSQL: (refusal, shared slot id)."""
        limited = self.local.try_start(client)
        if limited is not None:
            return limited, None
        try:
            taken = await self._take_shared(client)
        except BaseException:  # cancelled: the caller left while we asked
            self.local.undo(client)
            raise
        if isinstance(taken, Limited):
            self.local.undo(client)
            return taken, None
        return None, taken

    async def _uncount(self, client: str, slot: int | None) -> None:
        """Take back a call counted but not started: as if it had never been admitted."""
        self.local.undo(client)
        if slot is not None and self.shared is not None:
            self.slots.discard(slot)
            try:
                async with asyncio.timeout(SHARED_TIMEOUT_S):
                    await self.shared.forget({slot})
            except DB_ERRORS as exc:
                log.warning("call limits: could not take back a slot: %r", exc)

    async def _take_shared(self, client: str) -> int | Limited | None:
        """A slot, a refusal, or None when the shared count is off or could not be reached."""
        if self.shared is None:
            return None
        try:
            async with asyncio.timeout(SHARED_TIMEOUT_S):
                taken = await self.shared.take(client)
        except DB_ERRORS as exc:
            log.warning(
                "call limits: PostgreSQL did not answer (%r); counting this process only", exc
            )
            return None
        if isinstance(taken, int):
            self.slots.add(taken)
        return taken

    async def _release(self, slots: set[int]) -> None:
        """Best effort: a row not marked ended stops counting when its lease runs out."""
        assert self.shared is not None
        try:
            async with asyncio.timeout(SHARED_TIMEOUT_S):
                await self.shared.release(slots)
        except DB_ERRORS as exc:
            log.warning("call limits: could not release %d slot(s): %r", len(slots), exc)

    async def _renew_forever(self) -> None:
        assert self.shared is not None
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                async with asyncio.timeout(RENEW_EVERY_S):
                    await self.shared.renew(set(self.slots))
            except DB_ERRORS as exc:
                log.warning("call limits: could not renew leases: %r", exc)
