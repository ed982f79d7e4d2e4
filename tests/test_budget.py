"""The daily spending cap: reached mid-day, calls in progress finish and new ones are turned away.

Today's cost comes from the call records (a row of the `calls` table is all it takes), so the
test writes one costly row, lets the server read it, and checks every door: the page/SDK socket,
a phone call's webhook, the staff API and /metrics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import websockets

from server.access.budget import BUSY_MESSAGE, Budget
from tests.conftest import LiveServer, serve_app
from tests.test_relay import Caller
from tests.twilio_fakes import ScriptedModel

TIMEOUT = 10


async def test_the_figure_is_refreshed_and_a_failed_read_keeps_the_last_one(settings):
    costs: list[float | Exception] = [0.5, 2.5, RuntimeError("database gone"), 0.0]
    seen: list[tuple[float | None, float, bool]] = []

    async def cost_of_today() -> float:
        value = costs.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    capped = settings.model_copy(update={"model_daily_budget_usd": 2.0})
    budget = Budget(capped, cost_of_today, lambda *state: seen.append(state))
    await budget.refresh()
    assert not budget.exhausted and budget.spent_usd == 0.5
    await budget.refresh()
    assert budget.exhausted
    await budget.refresh()  # the database did not answer: still spent
    assert budget.exhausted and budget.spent_usd == 2.5
    await budget.refresh()  # a new day (the figure is today's): calls come back
    assert not budget.exhausted
    assert seen == [(2.0, 0.5, False), (2.0, 2.5, True), (2.0, 0.0, False)]
    assert budget.as_json()["budget_usd"] == 2.0


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedModel]:
    async with ScriptedModel().running() as model:
        yield model


@pytest.fixture
async def capped(settings, database, scripted) -> AsyncIterator[LiveServer]:
    limited = settings.model_copy(
        update={"openai_base_url": scripted.url, "model_daily_budget_usd": 1.0}
    )
    async with serve_app(limited) as live:
        yield live


async def spend_today(pool, usd: float) -> uuid.UUID:
    """A finished call of today that cost `usd`, as any process's recorder would write it."""
    call_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO calls (id, sid, channel, status, started_at, cost_usd)"
        " VALUES ($1, 'budget-test', 'phone', 'ended', $2, $3)",
        call_id,
        dt.datetime.now(dt.UTC),
        usd,
    )
    return call_id


async def test_budget_reached_mid_day(capped: LiveServer, scripted, pool):
    budget = capped.app.state.budget
    assert budget is not None and not budget.exhausted
    async with websockets.connect(f"{capped.ws_url}/v1/realtime") as ws:
        in_progress = Caller(ws)
        first = await scripted.session()
        await first.until("session.update")
        spent = await spend_today(pool, 1.25)
        try:
            await budget.refresh()  # what the background refresh does every BUDGET_CHECK_S
            assert budget.exhausted

            # a new page/SDK call is refused, before any model session opens
            async with websockets.connect(f"{capped.ws_url}/v1/realtime") as refused:
                error = orjson.loads(await asyncio.wait_for(refused.recv(), TIMEOUT))
                assert error["error"]["code"] == "budget_exhausted"
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(refused.recv(), TIMEOUT)
                assert refused.close_code == 1013
                assert refused.close_reason == "daily budget reached"

            # a new phone call hears a short message and ends: no stream, no model session
            async with httpx.AsyncClient(base_url=capped.url, timeout=TIMEOUT) as http:
                answer = await http.post(
                    "/twilio/voice", data={"CallSid": "CA_budget", "From": "+6598207272"}
                )
                root = ET.fromstring(answer.text)
                say = root.find("Say")
                assert say is not None and say.text == BUSY_MESSAGE
                assert root.find("Hangup") is not None and root.find("Connect") is None

                # the staff see it
                state = (await http.get("/api/budget")).json()
                assert state["exhausted"] is True and state["spent_usd"] >= 1.25
                metrics = (await http.get("/metrics")).text
                assert "voice_budget_exhausted 1.0" in metrics
                assert "voice_budget_usd 1.0" in metrics
            assert len(scripted.sessions) == 1

            # the call in progress goes on
            await in_progress.say("Hello, are you there?")
            item = await first.until("conversation.item.create")
            assert item["item"]["content"][0]["text"] == "Hello, are you there?"
        finally:
            await pool.execute("DELETE FROM calls WHERE id = $1", spent)
