"""Call records and metrics: what happened on every call, and how the service is doing.

`summary` (pure: a call's outcome, figures, cost, transcript from the core's notes), `store`
(every SQL statement of the calls table), `recorder` (the observer that writes the table),
`metrics` (the observer behind `/metrics`), `api` (the staff endpoints).

`cost_today(pool, settings)` is the estimated model cost in USD of the calls started today in
the restaurant's timezone, every process and host included, from the calls table (one index
range scan; live calls count as of their latest flush, at most CALL_RECORD_FLUSH_S old). A
spending cap (MODEL_DAILY_BUDGET_USD) is meant to call it before admitting a call.
"""

from __future__ import annotations

import asyncpg

from server.records import store
from server.settings import Settings


async def cost_today(pool: asyncpg.Pool, settings: Settings) -> float:
    """Today's estimated model cost in USD, all processes (see the module docstring)."""
    return await store.cost_of_day(
        pool, settings.today(), settings.timezone, settings.db_command_timeout_s
    )
