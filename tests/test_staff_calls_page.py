"""The staff page's Calls view in Chromium (under the strict CSP): the day's calls with outcome,
duration and cost; a call opens to its transcript with tool calls; a booking's history in the
book links to the call that made it. The calls are real voice calls over /v1/realtime.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import websockets

import offline_model
from tests.conftest import serve_app
from tests.test_page import ARTIFACTS, CHROMIUM
from tests.test_relay import BOOK, LOOKUP, Caller
from tests.test_staff_page import browser, staff_page

__all__ = ["browser"]  # the Chromium fixture, shared with the book's tests

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium for the browser tests; enable them: apt-get install chromium",
    ),
]
expect = pytest.importorskip("playwright.async_api").expect
TIMEOUT = 15


async def voice_call(ws_url: str, text: str, until: str) -> dict[str, Any]:
    async with websockets.connect(f"{ws_url}/v1/realtime", max_size=None, max_queue=None) as ws:
        caller = Caller(ws)
        await caller.until("session.updated")
        await caller.say(text)
        event = await caller.until(until)
        await caller.until("response.output_audio_transcript.done")
        return event


async def ended_rows(pool: Any, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            if await pool.fetchval("SELECT count(*) FROM calls WHERE status = 'ended'") >= count:
                return
            await asyncio.sleep(0.05)


async def test_calls_view_lists_the_day_opens_a_transcript_and_the_book_links_to_the_call(
    browser, settings, pool
):
    await pool.execute("TRUNCATE calls")
    phone = "81239901"
    async with offline_model.OfflineModel(pace=0.002) as model:
        update = {"openai_base_url": model.url, "openai_api_key": None, "call_record_flush_s": 0.2}
        async with serve_app(settings.model_copy(update=update)) as server:
            confirmed = await voice_call(
                server.ws_url, BOOK.format(phone=phone), "reservation.confirmed"
            )
            code = confirmed["confirmation_number"]
            await voice_call(
                server.ws_url, LOOKUP.format(phone="81239902"), "reservation.not_found"
            )
            await ended_rows(pool, 2)
            booked_id = str(await pool.fetchval("SELECT id FROM calls WHERE outcome = 'booked'"))
            cost = float(await pool.fetchval("SELECT sum(cost_usd) FROM calls"))

            async with staff_page(browser, server.url) as (page, _):
                await page.wait_for_function("() => window.staffTest.readies >= 1")
                await page.click('[data-view-link="calls"]')
                rows = page.locator("#calls-rows tr")
                await expect(rows).to_have_count(2)
                await expect(page.locator("#calls-count")).to_have_text("2")
                await expect(page.locator("#calls-booked")).to_have_text("1")
                await expect(page.locator("#calls-cost")).to_have_text(
                    f"${cost:.{4 if cost < 0.01 else 2}f}"
                )
                booked = page.locator(f'#calls-rows tr[data-id="{booked_id}"]')
                await expect(booked.locator('[data-col="outcome"]')).to_have_text("booked")
                await expect(booked.locator('[data-col="code"]')).to_have_text(code)
                await expect(booked.locator('[data-col="channel"]')).to_have_text("sdk")
                await expect(booked.locator('[data-col="duration"]')).to_contain_text(" s")
                looked = page.locator('#calls-rows tr[data-outcome="looked_up"]')
                await expect(looked.locator('[data-col="outcome"]')).to_have_text("looked up")

                # a call opens to its transcript, tool calls included
                await booked.locator('[data-action="open"]').click()
                dialog = page.locator("#call-dialog")
                await expect(dialog).to_be_visible()
                lines = page.locator("#call-transcript li")
                await expect(lines.first).to_contain_text(BOOK.format(phone=phone))
                tool = page.locator('#call-transcript li[data-role="tool"]')
                await expect(tool).to_contain_text("make_reservation (ok")
                await expect(tool).to_contain_text(code)
                await expect(page.locator('[data-fact="confirmation"]')).to_have_text(code)
                await page.screenshot(path=str(ARTIFACTS / "staff-call.png"))
                await page.click("#call-dialog [data-close]")
                await expect(dialog).not_to_be_visible()

                # the booking's history in the book links to the call that made it
                await page.click('[data-view-link="book"]')
                tomorrow = (settings.today() + dt.timedelta(days=1)).isoformat()
                await page.fill("#book-date", tomorrow)
                await page.dispatch_event("#book-date", "change")
                line = page.locator(f'#book-rows tr[data-code="{code}"]')
                await line.locator('[data-action="history"]').click()
                link = page.locator(f'#history-list a[data-call="{booked_id}"]')
                await expect(link).to_have_text("the call")
                await link.click()
                await expect(page.locator("#history-dialog")).not_to_be_visible()
                await expect(page.locator("#view-calls")).to_be_visible()
                await expect(dialog).to_be_visible()
                await expect(page.locator('[data-fact="outcome"]')).to_have_text("booked")
                await expect(tool).to_contain_text(code)
