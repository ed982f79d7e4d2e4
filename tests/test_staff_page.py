"""The staff book in a real browser: Debian's Chromium, driven by Playwright, under a strict
Content-Security-Policy, against the real server, a second server process and PostgreSQL.

The second process (`python -m server`) is where bookings are made over REST: a row appearing
on the page proves the change went through PostgreSQL's LISTEN/NOTIFY, not through memory.
Every wait is bounded (Playwright's 15 s) and waits for a condition, never for time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from harness.processes import free_port
from tests.conftest import LiveServer, serve_app
from tests.servers import ServerProcess, server_process
from tests.test_page import ARTIFACTS, CHROMIUM, TIMEOUT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium for the browser tests; enable them: apt-get install chromium",
    ),
]

async_api = pytest.importorskip("playwright.async_api", reason="pip install -e '.[dev]'")
expect = async_api.expect

# What the security headers will say: our own scripts and styles only, nothing inline.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
            timeout=TIMEOUT_MS,
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def other_process(test_dsn, database, pool) -> AsyncIterator[ServerProcess]:
    async with server_process(test_dsn) as process:
        yield process
    assert process.errors() == []


@contextlib.asynccontextmanager
async def staff_page(
    browser: Any, url: str, expected: tuple[str, ...] = ()
) -> AsyncIterator[tuple[Any, list[str]]]:
    """A fresh context on /staff with the CSP on the document; fails on any page error but the
    browser's own lines for `expected` statuses or refusals."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    problems: list[str] = []
    requested: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("request", lambda request: requested.append(request.url))

    async def with_csp(route: Any) -> None:
        response = await route.fetch()
        headers = {**response.headers, "content-security-policy": CSP}
        await route.fulfill(response=response, headers=headers)

    await page.route(f"{url}/staff/", with_csp)
    try:
        response = await page.goto(f"{url}/staff/")
        assert response.headers["content-security-policy"] == CSP  # enforced by Chromium
        yield page, requested
    finally:
        await context.close()
    # GET /api/messages answers 404 on a server without guest messages: "no messages yet".
    expected = (*expected, "status of 404")
    problems = [p for p in problems if not any(what in p for what in expected)]
    assert problems == [], "the page logged errors"


async def book(http: httpx.AsyncClient, url: str, day: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Ada Lovelace",
        "phone_number": "+6598207272",
        "reservation_date": day,
        "reservation_time": "19:30",
        "party_size": 4,
        "other_info": {"notes": "window seat"},
        **overrides,
    }
    response = await http.post(f"{url}/api/reservations", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def row(page: Any, code: str) -> Any:
    return page.locator(f'#book-rows tr[data-code="{code}"]')


async def test_the_book_is_live_across_processes_and_survives_a_restart(
    browser, settings, other_process, pool
):
    today = settings.today().isoformat()
    port = free_port()  # a fixed port, so that the restarted server is where the page looks
    first = serve_app(settings, port=port)
    server: LiveServer | None = await first.__aenter__()
    try:
        async with (
            httpx.AsyncClient(timeout=10) as http,
            staff_page(browser, server.url, ("ERR_CONNECTION_REFUSED",)) as (page, requested),
        ):
            await live_changes(page, http, other_process, today)
            seen_before_restart = await page.evaluate("() => window.staffTest.lastEventId")

            # The server goes away (the page keeps retrying); a booking is made meanwhile.
            await first.__aexit__(None, None, None)
            server = None
            await page.wait_for_function("() => window.staffTest.feedState !== 'live'")
            later = await book(
                http, other_process.url, today, phone_number="+6581234567", name="Grace Hopper"
            )
            async with serve_app(settings, port=port):
                await expect(row(page, later["confirmation_number"])).to_be_visible()
                assert await page.evaluate("() => window.staffTest.readies") >= 2
                last = await page.evaluate("() => window.staffTest.lastEventId")
                assert int(last) > int(seen_before_restart)
                await expect(page.locator("#book-covers")).to_have_text("4")
                await page.screenshot(path=str(ARTIFACTS / "staff-book.png"), full_page=True)
        assert requested and not any("token" in url.lower() for url in requested)
    finally:
        if server is not None:
            await first.__aexit__(None, None, None)


async def live_changes(page: Any, http: httpx.AsyncClient, other: ServerProcess, today: str):
    """Book elsewhere -> the row appears; edit and cancel on the page -> REST and history agree."""
    await page.wait_for_function("() => window.staffTest.readies >= 1")
    await expect(page.locator("#book-date")).to_have_value(today)
    await expect(page.locator("#book-empty")).to_be_visible()
    await expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")

    # A booking made over REST in the other process appears without a reload.
    started = time.perf_counter()
    made = await book(http, other.url, today)
    line = row(page, made["confirmation_number"])
    await expect(line).to_be_visible()
    appeared_s = time.perf_counter() - started
    assert appeared_s < 1.0, f"the row took {appeared_s:.2f}s to appear"
    await expect(line.locator('[data-col="name"]')).to_have_text("Ada Lovelace")
    await expect(line.locator('[data-col="party"]')).to_have_text("4 guests")
    await expect(line.locator('[data-col="notes"]')).to_have_text("window seat")
    await expect(line.locator('[data-col="phone"]')).to_have_text("+6598207272")
    await expect(page.locator("#book-covers")).to_have_text("4")

    # Edit, with its confirm step.
    await line.locator('[data-action="edit"]').click()
    await page.fill('#edit-form input[name="party_size"]', "6")
    await page.click("#edit-review")
    await expect(page.locator("#edit-summary")).to_contain_text("4 guests → 6 guests")
    await page.click("#edit-confirm-button")
    await expect(page.locator("#edit-dialog")).not_to_be_visible()
    await expect(line.locator('[data-col="party"]')).to_have_text("6 guests")
    await expect(page.locator("#book-covers")).to_have_text("6")

    # Cancel, with its confirm step; the other process sees it cancelled.
    await line.locator('[data-action="cancel"]').click()
    await expect(page.locator("#cancel-text")).to_contain_text("Ada Lovelace")
    await page.click("#cancel-confirm")
    await expect(line).to_have_attribute("data-status", "cancelled")
    await expect(page.locator("#book-covers")).to_have_text("0")
    phone = "%2B6598207272"
    assert (await http.get(f"{other.url}/api/reservations/{phone}")).status_code == 404
    listed = await http.get(
        f"{other.url}/api/reservations", params={"date": today, "status": "cancelled"}
    )
    codes = [r["confirmation_number"] for r in listed.json()["items"]]
    assert codes == [made["confirmation_number"]]
    history = await http.get(f"{other.url}/api/reservations/{phone}/history")
    steps = [(e["action"], e["source"]) for e in history.json()["items"]]
    assert steps == [("created", "rest"), ("changed", "staff"), ("cancelled", "staff")]

    # The page's own history view tells the same.
    await line.locator('[data-action="history"]').click()
    entries = page.locator("#history-list li")
    await expect(entries).to_have_count(3)
    await expect(entries.nth(0)).to_contain_text("Booked")
    await expect(entries.nth(2)).to_contain_text("Cancelled")
    await expect(entries.nth(2)).to_contain_text("staff page")
    await page.screenshot(path=str(ARTIFACTS / "staff-history.png"))
    await page.click("#history-dialog [data-close]")
    await expect(page.locator("#history-dialog")).not_to_be_visible()


async def test_the_page_asks_for_the_staff_token_and_keeps_it_out_of_urls(browser, settings, pool):
    locked = settings.model_copy(update={"staff_token": SecretStr("open-sesame")})
    async with (
        serve_app(locked) as server,
        staff_page(browser, server.url, ("status of 401",)) as (page, requested),
    ):
        gate = page.locator("#gate")
        await expect(gate).to_be_visible()
        assert await page.is_hidden("#view-book")
        await page.fill("#token-input", "wrong")
        await page.click("#token-form button[type=submit]")
        await expect(page.locator("#gate-error")).to_have_text("That token was not accepted.")
        await page.fill("#token-input", "open-sesame")
        await page.click("#token-form button[type=submit]")
        await expect(page.locator("#view-book")).to_be_visible()
        await expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")
        await expect(page.locator("#book-empty")).to_be_visible()
        kept = await page.evaluate("() => sessionStorage.getItem('staffToken')")
        assert kept == "open-sesame"
    assert not any("sesame" in url or "wrong" in url for url in requested)


async def test_without_staff_token_a_remote_client_is_told_why(browser, settings, pool):
    """The rule itself is tested over HTTP; here, the page explains a 403 in words."""
    async with (
        serve_app(settings) as server,
        staff_page(browser, server.url, ("status of 403",)) as (page, _),
    ):
        await page.wait_for_function("() => window.staffTest.readies >= 1")
        # As if the page were loaded through a proxy: every staff request is refused.
        await page.route(
            "**/api/**",
            lambda route: route.continue_(
                headers={**route.request.headers, "x-forwarded-for": "203.0.113.9"}
            ),
        )
        # Any staff request now answers 403: the page's own background requests (the requests
        # badge, the profile) may hide the book before this change does, so set the date
        # without waiting for the field to be visible.
        await page.eval_on_selector("#book-date", "el => { el.value = '2030-01-02'; }")
        await page.dispatch_event("#book-date", "change")
        await expect(page.locator("#closed")).to_be_visible()
        await expect(page.locator("#closed-text")).to_contain_text("STAFF_TOKEN")


async def test_the_staff_page_says_when_the_daily_budget_is_spent(
    browser, settings, database, pool
):
    from tests.test_budget import spend_today

    capped = settings.model_copy(update={"model_daily_budget_usd": 1.0})
    async with serve_app(capped) as live:
        spent = await spend_today(pool, 1.5)
        try:
            await live.app.state.budget.refresh()
            async with staff_page(browser, live.url) as (page, _):
                banner = page.locator("#budget")
                await expect(banner).to_be_visible()
                await expect(banner).to_contain_text("daily budget of $1.00 is spent")
        finally:
            await pool.execute("DELETE FROM calls WHERE id = $1", spent)
