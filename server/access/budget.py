"""The daily spending cap: `MODEL_DAILY_BUDGET_USD` against the estimated cost of today's calls.

The cost comes from the call records (every process and host writes its calls' estimated cost
to PostgreSQL), so the cap holds across processes. Each process refreshes the day's total every
`BUDGET_CHECK_S` in the background and answers "is the budget spent?" from that figure: no
database round trip when a call starts, and a decision at most `BUDGET_CHECK_S` plus the
records' flush interval late. "Today" is the restaurant's, so the budget comes back at midnight
there. While it is spent, calls in progress finish; new page and SDK calls are refused with
`budget_exhausted`; new phone calls hear a short message and end, with no model session opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.settings import Settings

log = logging.getLogger("server.budget")

BUSY_MESSAGE = (
    "Sorry, our phone booking assistant is not available right now. "
    "Please call again tomorrow, or book on our website."
)


class Budget:
    """This process's view of today's spending; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        cost_of_today: Callable[[], Awaitable[float]],
        on_refresh: Callable[[float | None, float, bool], None] | None = None,
    ):
        self.settings = settings
        self.on_refresh = on_refresh  # metrics: the limit, today's spend, exhausted
        self.limit_usd = settings.model_daily_budget_usd
        self.cost_of_today = cost_of_today
        self.spent_usd = 0.0
        self.checked = False  # at least one figure read from the database
        self._refresher: asyncio.Task[None] | None = None

    @property
    def exhausted(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    def refusal_error(self) -> dict[str, Any]:
        from protocol import realtime as p

        return p.error_event(
            "budget_exhausted",
            "The host is not taking calls for the rest of today (the daily budget is spent).",
            error_type="server_error",
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "budget_usd": self.limit_usd,
            "spent_usd": round(self.spent_usd, 4),
            "exhausted": self.exhausted,
            "day": self.settings.today().isoformat(),
        }

    async def refresh(self) -> None:
        """Read today's cost once; a database that does not answer keeps the last figure."""
        try:
            async with asyncio.timeout(self.settings.db_command_timeout_s):
                spent = await self.cost_of_today()
        except Exception as exc:  # logged; the next refresh tries again
            log.warning("could not read today's call cost: %r", exc)
            return
        was = self.exhausted
        self.spent_usd, self.checked = spent, True
        if self.on_refresh is not None:
            self.on_refresh(self.limit_usd, spent, self.exhausted)
        if self.exhausted and not was:
            log.warning(
                "MODEL_DAILY_BUDGET_USD reached: $%.2f of $%.2f spent today; new calls are "
                "refused until midnight (%s)",
                spent,
                self.limit_usd,
                self.settings.restaurant_timezone,
            )
        elif was and not self.exhausted:
            log.info("the daily budget is available again ($%.2f spent)", spent)

    async def start(self) -> None:
        if self.limit_usd is None:
            return
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="budget")

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.budget_check_s)
            await self.refresh()

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
