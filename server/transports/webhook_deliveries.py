"""Which webhook deliveries were already acted on, shared by every process through PostgreSQL.

OpenAI may deliver one event more than once, and with several workers or hosts the repeat can
reach another process. A unique `webhook-id` row, inserted before acting, makes "act once" hold
across all of them: the insert that loses the race finds the row and the delivery is dropped.
"""

from __future__ import annotations

import logging
import time

import asyncpg

from server.access.call_slots import DB_ERRORS
from server.book.reservations import DatabaseUnavailable

log = logging.getLogger("server.webhooks")

KEEP_DAYS = 4  # OpenAI retries a delivery for up to 72 hours
PRUNE_EVERY_S = 3600.0


class WebhookDeliveries:
    """`first(webhook_id)`: True once per id, whichever process asks."""

    def __init__(self) -> None:
        self.pruned_at = -PRUNE_EVERY_S

    async def first(self, pool: asyncpg.Pool, webhook_id: str, event_type: str) -> bool:
        """Record the delivery; False when it was recorded before (a repeat)."""
        try:
            inserted = await pool.fetchval(
                "INSERT INTO webhook_deliveries (webhook_id, event_type) VALUES ($1, $2)"
                " ON CONFLICT (webhook_id) DO NOTHING RETURNING true",
                webhook_id,
                event_type,
            )
        except DB_ERRORS as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        now = time.monotonic()
        if now - self.pruned_at >= PRUNE_EVERY_S:
            self.pruned_at = now
            try:
                await pool.execute(
                    "DELETE FROM webhook_deliveries"
                    " WHERE received_at < now() - make_interval(days => $1)",
                    KEEP_DAYS,
                )
            except DB_ERRORS as exc:  # the next hour's prune takes these rows too
                log.warning("pruning webhook deliveries failed: %s", exc)
        return bool(inserted)
