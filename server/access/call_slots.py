"""Per-client call limits shared by every server process, through PostgreSQL.

Process memory is not shared, so concurrent calls per client and new calls per minute (the limits
that cap what one client can spend on model sessions) are counted in the UNLOGGED table
`call_admissions` (migrations/002). The cost is one round trip when a call starts
(`admit_call`, a function that locks the client's key, counts and inserts), one when it ends,
and one lease renewal per process every `RENEW_EVERY_S` for all its live calls together; never
anything per audio frame.

Crash safety: a live row counts only while its lease is current. A process renews its own live
rows (by id, so a call whose release failed stops being renewed); the rows of a process that
died stop counting within `LEASE_S`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import asyncpg

from server.access.ratelimit import Limited

log = logging.getLogger("server.call_slots")

LEASE_S = 30.0  # a dead process's calls stop counting this long after its last renewal
RENEW_EVERY_S = 10.0
WINDOW = "1 minute"
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class SharedCallSlots:
    def __init__(self, pool: asyncpg.Pool, max_live: int, per_min: int, lease_s: float = LEASE_S):
        self.pool = pool
        self.max_live = max_live
        self.per_min = per_min
        self.lease_s = lease_s

    async def take(self, client: str) -> int | Limited:
        """A slot id for a new call of `client`, or the limit that refuses it.

        Raises one of `DB_ERRORS` when PostgreSQL cannot answer (the caller bounds the wait).
        """
        row = await self.pool.fetchrow(
            "SELECT slot_id, refused, retry_after_s FROM admit_call($1, $2, $3, $4)",
            client,
            self.max_live,
            self.per_min,
            self.lease_s,
        )
        assert row is not None
        if row["refused"] is not None:
            return Limited(row["refused"], row["retry_after_s"])
        return int(row["slot_id"])

    async def release(self, slot_ids: Collection[int]) -> None:
        await self.pool.execute(
            "UPDATE call_admissions SET ended_at = clock_timestamp()"
            " WHERE id = ANY($1::bigint[]) AND ended_at IS NULL",
            list(slot_ids),
        )

    async def forget(self, slot_ids: Collection[int]) -> None:
        """Remove rows of calls that were counted but never started (they must not count)."""
        await self.pool.execute(
            "DELETE FROM call_admissions WHERE id = ANY($1::bigint[])", list(slot_ids)
        )

    async def renew(self, slot_ids: Collection[int]) -> None:
        """Extend the leases of this process's live calls; forget rows nobody needs any more."""
        async with self.pool.acquire() as conn:
            if slot_ids:
                await conn.execute(
                    "UPDATE call_admissions"
                    " SET lease_until = clock_timestamp() + $2 * interval '1 second'"
                    " WHERE id = ANY($1::bigint[]) AND ended_at IS NULL",
                    list(slot_ids),
                    self.lease_s,
                )
            await conn.execute(
                "DELETE FROM call_admissions"
                f" WHERE started_at < clock_timestamp() - interval '{WINDOW}'"
                " AND (ended_at IS NOT NULL OR lease_until < clock_timestamp())"
            )
