"""The staff book as a host uses it all evening, in Debian's Chromium against a real server and
PostgreSQL: add, walk-in, edit, cancel, details, two pages at once and the stale-edit refusal,
the phone layout and booking with the keyboard alone.

The browser runs in another timezone (Los Angeles) than the restaurant (Singapore): whatever
the page shows or books as "now" must be the restaurant's. Every wait is for a condition in the
DOM (Playwright's bounded `expect`), never for time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, serve_app
from tests.test_page import ARTIFACTS, TIMEOUT_MS
from tests.test_staff_page import CSP, book, browser, expect, pytestmark, row

__all__ = ["browser", "pytestmark"]  # Chromium (module-scoped) and the browser mark, shared

BROWSER_ZONE = "America/Los_Angeles"  # not the restaurant's (Asia/Singapore)
PHONE = (390, 844)
DESK = (1280, 860)


@pytest.fixture
async def server(settings, database, pool) -> AsyncIterator[LiveServer]:
    async with serve_app(settings) as live:
        yield live


@contextlib.asynccontextmanager
async def open_book(
    browser: Any,
    url: str,
    size: tuple[int, int] = DESK,
    hash_: str = "",
    expected: tuple[str, ...] = (),
) -> AsyncIterator[Any]:
    """/staff in a fresh context (24-hour clock, another timezone, the CSP enforced), live;
    fails on any error the page logs but the browser's lines for `expected` statuses."""
    context = await browser.new_context(
        viewport={"width": size[0], "height": size[1]},
        locale="en-GB",
        timezone_id=BROWSER_ZONE,
        has_touch=size == PHONE,
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    async def with_csp(route: Any) -> None:
        response = await route.fetch()
        await route.fulfill(
            response=response, headers={**response.headers, "content-security-policy": CSP}
        )

    await page.route(f"{url}/staff/", with_csp)
    try:
        await page.goto(f"{url}/staff/{hash_}")
        await expect(page.locator("#feed-state")).to_have_attribute("data-state", "live")
        await page.wait_for_function("() => window.staffTest.profileLoaded === true")
        yield page
    finally:
        await context.close()
    # The messages endpoint may be absent on this server: its 404 is an expected line.
    expected = (*expected, "status of 404")
    assert [p for p in problems if not any(e in p for e in expected)] == [], "page errors"


def restaurant_now(settings: Any) -> dt.datetime:
    return dt.datetime.now(settings.timezone)


async def reservation(http: httpx.AsyncClient, url: str, phone: str) -> dict[str, Any]:
    answer = await http.get(f"{url}/api/reservations/{phone.replace('+', '%2B')}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_add_walk_in_edit_cancel_and_details(browser, settings, server):
    today = settings.today().isoformat()
    async with httpx.AsyncClient(timeout=10) as http, open_book(browser, server.url) as page:
        # Add a booking from the dialog.
        await page.click("#add-open")
        form = page.locator("#add-form")
        await form.get_by_label("Name", exact=True).fill("Grace Hopper")
        await form.get_by_label("Phone", exact=True).fill("+65 8123 4567")
        await expect(form.get_by_label("Date", exact=True)).to_have_value(today)
        await form.get_by_label("Party", exact=True).fill("3")
        await form.get_by_label("Time", exact=True).fill("23:45")
        await form.get_by_label("Notes", exact=True).fill("high chair")
        await page.click("#add-submit")
        await expect(page.locator("#add-dialog")).not_to_be_visible()
        made = await reservation(http, server.url, "+6581234567")
        assert (made["name"], made["party_size"], made["reservation_time"]) == (
            "Grace Hopper",
            3,
            "23:45",
        )
        assert made["other_info"] == {"notes": "high chair"}
        line = row(page, made["confirmation_number"])
        await expect(line.locator('[data-col="notes"]')).to_have_text("high chair")

        # Walk-in: one click, a party of 4, now where the restaurant is (not the browser).
        before = restaurant_now(settings)
        await page.get_by_role("button", name="Walk-in party of 4, now").click()
        await expect(page.locator("#walk-in-status")).to_contain_text("Walk-in of 4 booked")
        after = restaurant_now(settings)
        listed = await http.get(f"{server.url}/api/reservations", params={"date": today})
        walk_ins = [r for r in listed.json()["items"] if r["name"] == "Walk-in"]
        assert len(walk_ins) == 1
        walk_in = walk_ins[0]
        assert walk_in["party_size"] == 4 and walk_in["other_info"]["walk_in"] is True
        assert walk_in["reservation_date"] == before.date().isoformat()
        assert walk_in["reservation_time"] in {f"{before:%H:%M}", f"{after:%H:%M}"}
        assert walk_in["phone_number"].startswith("+442079460")  # Ofcom's drama range
        await expect(row(page, walk_in["confirmation_number"])).to_be_visible()
        await expect(page.locator("#book-covers")).to_have_text("7")

        # Edit from the row (with its confirm step), then cancel.
        await line.locator('[data-action="edit"]').click()
        await page.fill('#edit-form input[name="party_size"]', "5")
        await page.click("#edit-review")
        await page.click("#edit-confirm-button")
        await expect(line.locator('[data-col="party"]')).to_have_text("5 guests")
        assert (await reservation(http, server.url, "+6581234567"))["party_size"] == 5
        await line.locator('[data-action="cancel"]').click()
        await page.click("#cancel-confirm")
        await expect(line).to_have_attribute("data-status", "cancelled")
        await expect(page.locator("#book-covers")).to_have_text("4")

        # Details: facts, notes, the history by the staff page, messages (none on this server).
        await line.locator('[data-action="history"]').click()
        dialog = page.locator("#history-dialog")
        await expect(dialog.locator('[data-fact="status"]')).to_have_text("cancelled")
        await expect(page.locator("#details-notes")).to_have_text("high chair")
        entries = page.locator("#history-list li")
        await expect(entries).to_have_count(3)
        await expect(entries.nth(1)).to_contain_text("Party: 3 guests → 5 guests")
        await expect(entries.nth(2)).to_contain_text("by staff page")
        await expect(page.locator("#messages-empty")).to_have_text("No messages yet.")
        await page.click("#history-dialog [data-close]")


async def test_an_edit_on_one_page_appears_on_the_other_and_a_stale_save_is_refused(
    browser, settings, server
):
    today = settings.today().isoformat()
    async with (
        httpx.AsyncClient(timeout=10) as http,
        open_book(browser, server.url, expected=("status of 412",)) as first,
        open_book(browser, server.url) as second,
    ):
        made = await book(http, server.url, today)
        code = made["confirmation_number"]
        for page in (first, second):
            await expect(row(page, code)).to_be_visible()

        # The first host starts changing the party; the second saves a new time meanwhile.
        await row(first, code).locator('[data-action="edit"]').click()
        await first.fill('#edit-form input[name="party_size"]', "8")
        await first.click("#edit-review")

        await row(second, code).locator('[data-action="edit"]').click()
        await second.fill('#edit-form input[name="reservation_time"]', "21:00")
        await second.click("#edit-review")
        await second.click("#edit-confirm-button")
        await expect(second.locator("#edit-dialog")).not_to_be_visible()
        # The change appears on the first page by itself (the feed), dialog still open.
        await expect(row(first, code).locator('[data-col="time"]')).to_have_text("21:00")

        # The first host confirms: refused, shown the booking as it is now; nothing overwritten.
        await first.click("#edit-confirm-button")
        stale = first.locator("#stale-dialog")
        await expect(stale).to_be_visible()
        await expect(stale.locator('[data-fact="when"]')).to_contain_text("21:00")
        await expect(stale.locator('[data-fact="party"]')).to_have_text("4 guests")
        now = await reservation(http, server.url, made["phone_number"])
        assert (now["reservation_time"], now["party_size"]) == ("21:00", 4)
        await stale.locator("[data-close]").click()

        # Having seen it, the first host's next edit (the current version) goes through and
        # shows on the second page.
        await row(first, code).locator('[data-action="edit"]').click()
        await first.fill('#edit-form input[name="party_size"]', "8")
        await first.click("#edit-review")
        await first.click("#edit-confirm-button")
        await expect(row(second, code).locator('[data-col="party"]')).to_have_text("8 guests")
        history = await http.get(f"{server.url}/api/reservations/%2B6598207272/history")
        assert [e["action"] for e in history.json()["items"]] == ["created", "changed", "changed"]


CONTROLS = "button, a[href], input, select, textarea, [role=button]"

# What each view must satisfy on a phone: nothing wider than the screen, every visible control
# at least 40 px square and with an accessible name.
LAYOUT_PROBLEMS = """(selector) => {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) {
    problems.push(`page ${root.scrollWidth}px wide in ${root.clientWidth}px`);
  }
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || el.closest("[hidden]")) continue;
    if (el.closest(".timeline-grid")) continue;  // inside its own scroller
    const what = el.id || el.name || el.textContent.trim().slice(0, 30) || el.tagName;
    if (box.height < 40 || box.width < 40) {
      problems.push(`${what}: ${Math.round(box.width)}x${Math.round(box.height)}`);
    }
    const named = el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
      || (el.labels && el.labels.length) || el.textContent.trim();
    if (!named) problems.push(`${what}: no accessible name`);
  }
  return problems;
}"""


async def test_the_phone_layout_fits_390_px_with_40_px_targets(browser, settings, server):
    today = settings.today().isoformat()
    async with httpx.AsyncClient(timeout=10) as http:
        made = await book(http, server.url, today, name="Ada Augusta King, Countess of Lovelace")
        await book(http, server.url, today, phone_number="+6581234567", party_size=2)
    async with open_book(browser, server.url, PHONE) as page:
        await expect(row(page, made["confirmation_number"])).to_be_visible()
        assert await page.evaluate(LAYOUT_PROBLEMS, CONTROLS) == []
        await page.screenshot(path=str(ARTIFACTS / "staff-phone-day.png"), full_page=True)
        for view in ("requests", "week", "settings", "calls"):
            await page.click(f'[data-view-link="{view}"]')
            await expect(page.locator(f"#view-{view}")).to_be_visible()
            assert await page.evaluate(LAYOUT_PROBLEMS, CONTROLS) == [], view
        await page.click('[data-view-link="book"]')
        await page.click("#add-open")
        await expect(page.locator("#add-dialog")).to_be_visible()
        assert await page.evaluate(LAYOUT_PROBLEMS, "#add-dialog " + CONTROLS) == []


async def tab_to(page: Any, name: str) -> None:
    """Tab until the control named `name` has the focus (a date input takes one Tab per part:
    day, month, year); fails if it is not within a few steps."""
    for _ in range(5):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement.name") == name:
            return
    raise AssertionError(f"Tab did not reach {name}")


async def test_a_booking_made_with_the_keyboard_alone(browser, settings, server):
    async with httpx.AsyncClient(timeout=10) as http, open_book(browser, server.url) as page:
        keys = page.keyboard
        # Tab from the top of the page to "Add booking": it is reachable, in order.
        for _ in range(40):
            await keys.press("Tab")
            if await page.evaluate("() => document.activeElement.id") == "add-open":
                break
        else:
            raise AssertionError("Tab never reached Add booking")
        await keys.press("Enter")
        await expect(page.locator("#add-dialog")).to_be_visible()
        focused = "() => document.activeElement.name"
        assert await page.evaluate(focused) == "name"
        await keys.type("Katherine Johnson")
        await keys.press("Tab")
        await keys.type("91234567")
        await tab_to(page, "party_size")  # past the date (the day on show), field by field
        await keys.press("Control+A")
        await keys.type("2")
        await tab_to(page, "reservation_time")
        await keys.type("1130P")  # Chromium's time field is on a 12-hour clock here: 23:30
        await tab_to(page, "notes")
        await keys.type("by the window")
        await keys.press("Enter")  # submits the form
        await expect(page.locator("#add-dialog")).not_to_be_visible()
        made = await reservation(http, server.url, "+6591234567")
        assert (made["name"], made["reservation_time"], made["party_size"]) == (
            "Katherine Johnson",
            "23:30",
            2,
        )
        await expect(row(page, made["confirmation_number"])).to_be_visible()
