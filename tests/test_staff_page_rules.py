"""The staff book with the availability engine on, in Chromium against a real server and
PostgreSQL: settings saved and the bookings outside the new rules listed, booking with offered
times, a refusal and an explicit override (recorded), requests confirmed and declined, and the
week with its slots and tables.

Each test starts from the default profile (`always`) and puts back the default at the end.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import LiveServer, serve_app
from tests.test_page import ARTIFACTS
from tests.test_staff_page import book, browser, expect, pytestmark, row
from tests.test_staff_page_book import CONTROLS, LAYOUT_PROBLEMS, PHONE, open_book, reservation

__all__ = ["browser", "pytestmark"]

DOCS_IMG = ARTIFACTS.parent.parent / "docs" / "img"
EVENING = [["18:00", "21:30"]]
RULES = {
    "availability": "rules",
    "hours": {day: EVENING for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "covers_per_slot": 4,
    "slot_minutes": 15,
    "max_party_size": 6,
}
PLAN = {
    "tables": [{"name": "T1", "seats": 2}, {"name": "T2", "seats": 4}, {"name": "T3", "seats": 2}],
    "combinations": [["T1", "T3"]],
}


@pytest.fixture
async def server(settings, database, pool) -> AsyncIterator[LiveServer]:
    # The `pool` fixture empties the book (table holds and profile too), before and after.
    async with serve_app(settings) as live:
        yield live


def tomorrow(settings: Any) -> str:
    return (settings.today() + dt.timedelta(days=1)).isoformat()


async def put_profile(http: httpx.AsyncClient, url: str, **profile: Any) -> None:
    answer = await http.put(f"{url}/api/restaurant", json=profile)
    assert answer.status_code == 200, answer.text


async def add_form(page: Any, name: str, phone: str, day: str, time: str | None = None) -> Any:
    """Open "Add booking" and fill it in (not sent); the form's locator."""
    await page.click("#add-open")
    form = page.locator("#add-form")
    await form.get_by_label("Name", exact=True).fill(name)
    await form.get_by_label("Phone", exact=True).fill(phone)
    await form.get_by_label("Date", exact=True).fill(day)
    if time is not None:
        await form.get_by_label("Time", exact=True).fill(time)
    return form


def keep_for_docs(name: str) -> None:
    """The screenshots in docs/staff-book.md are the ones these tests take. With
    `UPDATE_DOCS_SCREENSHOTS=1` a run refreshes them; otherwise a test run leaves the tree clean."""
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1" and DOCS_IMG.is_dir():
        shutil.copyfile(ARTIFACTS / name, DOCS_IMG / name)


async def test_settings_are_saved_and_the_bookings_outside_them_listed(browser, settings, server):
    day = tomorrow(settings)
    async with httpx.AsyncClient(timeout=10) as http:
        late = await book(http, server.url, day, reservation_time="23:45", name="Late Larry")
        fine = await book(http, server.url, day, phone_number="+6581234567", name="Ada Early")
        async with open_book(browser, server.url, hash_="#settings") as page:
            form = page.locator("#settings-form")
            await expect(form.get_by_label("Name", exact=True)).not_to_have_value("")
            await form.get_by_label("Availability").select_option("rules")
            for field in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
                await form.get_by_label(field).fill("12:00-14:00, 18:00-21:30")
            await form.get_by_label("Saturday").fill("11:30-22:00")
            await form.get_by_label("Sunday").fill("")
            await form.get_by_label("Covers per slot").fill("20")
            await form.get_by_label("Max party size").fill("8")
            await page.fill('textarea[name="closures"]', "2030-12-24 2030-12-26 Christmas")
            await page.fill('textarea[name="tables"]', "T1 2\nT2 4 3\nT3 2")
            await page.fill('textarea[name="combinations"]', "T1+T3")
            await page.click("#settings-save")
            await expect(page.locator("#settings-saved")).to_have_text("Saved.")

            # Kept, and listed with the reason: the 23:45 booking; the 19:30 one fits.
            listed = page.locator("#conflicts-list li")
            await expect(listed).to_have_count(1)
            await expect(listed.first).to_have_attribute("data-code", late["confirmation_number"])
            await expect(listed.first).to_contain_text("outside the opening hours")
            await page.screenshot(path=str(ARTIFACTS / "staff-settings.png"), full_page=True)
        keep_for_docs("staff-settings.png")
        saved = (await http.get(f"{server.url}/api/restaurant")).json()
        assert saved["availability"] == "rules" and saved["covers_per_slot"] == 20
        assert saved["hours"]["sun"] == [] and saved["hours"]["sat"] == [["11:30", "22:00"]]
        assert saved["closures"] == [
            {"from": "2030-12-24", "to": "2030-12-26", "reason": "Christmas"}
        ]
        assert [t["name"] for t in saved["tables"]] == ["T1", "T2", "T3"]
        assert saved["tables"][1]["min_party"] == 3 and saved["combinations"] == [["T1", "T3"]]
        for made in (late, fine):  # nothing was dropped
            kept = await reservation(http, server.url, made["phone_number"])
            assert kept["status"] == "confirmed"


async def test_booking_with_rules_offers_open_times_and_an_override_is_recorded(
    browser, settings, server
):
    day = tomorrow(settings)
    async with httpx.AsyncClient(timeout=10) as http:
        await put_profile(http, server.url, **RULES)
        full = await book(http, server.url, day, reservation_time="19:00", party_size=4)
        async with open_book(browser, server.url, expected=("status of 409",)) as page:
            form = await add_form(page, "Grace Hopper", "+6581234567", day)
            await form.get_by_label("Date", exact=True).dispatch_event("change")
            offered = page.locator("#offered-times button")
            await expect(offered.first).to_have_attribute("data-time", "18:00")
            times = await offered.evaluate_all("(all) => all.map((b) => b.dataset.time)")
            assert "19:00" not in times and "21:30" in times and "22:00" not in times
            await page.locator('#offered-times button[data-time="18:30"]').click()
            await expect(form.get_by_label("Time", exact=True)).to_have_value("18:30")
            await page.click("#add-submit")
            await expect(page.locator("#add-dialog")).not_to_be_visible()
            assert (await reservation(http, server.url, "+6581234567"))["reservation_time"] == (
                "18:30"
            )

            # A full slot is refused with the reason and other times; "Book anyway" books it.
            await add_form(page, "Alan Turing", "+6561234567", day, "19:00")
            await page.click("#add-submit")
            await expect(page.locator("#add-refused-text")).to_contain_text("that slot is full")
            alternatives = page.locator("#add-alternatives button")
            await expect(alternatives.first).to_be_visible()
            await page.click("#add-override")
            await expect(page.locator("#add-dialog")).not_to_be_visible()
            made = await reservation(http, server.url, "+6561234567")
            assert made["reservation_time"] == "19:00"
            history = await http.get(f"{server.url}/api/reservations/%2B6561234567/history")
            entry = history.json()["items"][0]
            assert (entry["action"], entry["source"], entry["override"]) == (
                "created",
                "staff",
                True,
            )
            line = row(page, made["confirmation_number"])
            if await page.locator("#book-date").input_value() != day:
                await page.fill("#book-date", day)
                await page.dispatch_event("#book-date", "change")
            await expect(row(page, full["confirmation_number"])).to_be_visible()
            await line.locator('[data-action="history"]').click()
            await expect(page.locator("#history-list li").first).to_contain_text(
                "booked past the rules"
            )
            await page.click("#history-dialog [data-close]")

            # Moving a booking into the full slot is refused with the reason and other times.
            moved = await reservation(http, server.url, "+6581234567")
            await row(page, moved["confirmation_number"]).locator('[data-action="edit"]').click()
            await page.fill('#edit-form input[name="reservation_time"]', "19:00")
            await page.click("#edit-review")
            await page.click("#edit-confirm-button")
            refusal = page.locator("#edit-error")
            await expect(refusal).to_contain_text("Not bookable: that slot is full.")
            await expect(refusal).to_contain_text("Nearest other times:")
            still = await reservation(http, server.url, "+6581234567")
            assert still["reservation_time"] == "18:30"


async def test_requests_are_confirmed_and_declined_from_their_list(browser, settings, server):
    day = tomorrow(settings)
    async with httpx.AsyncClient(timeout=10) as http:
        await put_profile(http, server.url, **{**RULES, "covers_per_slot": None})
        asked = []
        for phone, name, party in (("+6581234567", "Big Party", 8), ("+6561234567", "Huge", 12)):
            answer = await http.post(
                f"{server.url}/api/reservations",
                json={
                    "name": name,
                    "phone_number": phone,
                    "reservation_date": day,
                    "reservation_time": "19:00",
                    "party_size": party,
                },
            )
            assert answer.status_code in (200, 201, 202), answer.text
            assert answer.json()["status"] == "requested"
            asked.append(answer.json())
        async with open_book(browser, server.url, hash_="#requests") as page:
            cards = page.locator("#requests-list li")
            await expect(cards).to_have_count(2)
            await expect(page.locator("#requests-badge")).to_have_text("2")
            await page.get_by_role("button", name="Confirm Big Party, 8 guests").click()
            await expect(cards).to_have_count(1)
            confirmed = await reservation(http, server.url, "+6581234567")
            assert confirmed["status"] == "confirmed"
            await page.get_by_role("button", name="Decline Huge, 12 guests").click()
            await expect(page.locator("#requests-empty")).to_be_visible()
            await expect(page.locator("#requests-badge")).to_be_hidden()
        history = await http.get(f"{server.url}/api/reservations/%2B6561234567/history")
        assert [e["action"] for e in history.json()["items"]] == ["created", "declined"]
        history = await http.get(f"{server.url}/api/reservations/%2B6581234567/history")
        assert [(e["action"], e["source"]) for e in history.json()["items"]] == [
            ("created", "rest"),
            ("confirmed", "staff"),
        ]


async def test_the_week_shows_covers_slots_and_who_sits_at_which_table(browser, settings, server):
    day = tomorrow(settings)
    guests = [
        ("+6591234567", "Ada Lovelace", 2, "18:00", "window seat"),
        ("+6581234567", "Alan Turing", 4, "18:00", ""),
        ("+6561234567", "Grace Hopper", 2, "19:30", "birthday"),
        ("+6598207272", "Edsger Dijkstra", 3, "20:00", ""),
    ]
    async with httpx.AsyncClient(timeout=10) as http:
        await put_profile(http, server.url, **{**RULES, **PLAN, "covers_per_slot": 6})
        for phone, name, party, time, notes in guests:
            await book(
                http,
                server.url,
                day,
                phone_number=phone,
                name=name,
                party_size=party,
                reservation_time=time,
                other_info={"notes": notes} if notes else {},
            )
        async with open_book(browser, server.url, hash_="#week") as page:
            cards = page.locator("#week-days button")
            await expect(cards).to_have_count(7)
            await cards.nth(1).click()
            await expect(cards.nth(1)).to_contain_text("11 covers · 4 bookings")
            await expect(cards.nth(1)).to_contain_text("18:00–21:30: 11")
            await expect(page.locator('#slot-rows tr[data-slot="18:00"]')).to_contain_text("6 / 6")
            await expect(page.locator('#slot-rows tr[data-slot="18:00"]')).to_have_class("is-full")
            seats = page.locator("#timeline-grid .tl-seat")
            await expect(seats).to_have_count(4)
            await expect(page.locator("#timeline-grid")).to_contain_text("Alan Turing, 4 guests")
            await expect(page.locator("#timeline-grid .tl-free").first).to_contain_text("free")
            # A booking made elsewhere shows up in the week by itself (the live feed).
            await book(
                http,
                server.url,
                day,
                phone_number="+6590000000",
                party_size=1,
                name="Solo",
                reservation_time="21:00",
                other_info={},
            )
            await expect(cards.nth(1)).to_contain_text("12 covers · 5 bookings")
            await page.screenshot(path=str(ARTIFACTS / "staff-week.png"), full_page=True)

            await page.click('[data-view-link="book"]')
            await page.fill("#book-date", day)
            await page.dispatch_event("#book-date", "change")
            await expect(page.locator("#book-rows tr")).to_have_count(5)
            await page.evaluate("() => document.activeElement.blur()")
            await page.screenshot(path=str(ARTIFACTS / "staff-day.png"), full_page=True)
    keep_for_docs("staff-week.png")
    keep_for_docs("staff-day.png")


async def test_with_rules_and_tables_every_view_fits_a_phone(browser, settings, server):
    """390 px: the week with its table timeline (which scrolls inside its own box), the
    requests, the settings and a refusal in the booking form; nothing scrolls sideways."""
    day = tomorrow(settings)
    async with httpx.AsyncClient(timeout=10) as http:
        await put_profile(http, server.url, **{**RULES, **PLAN})
        await book(http, server.url, day, reservation_time="18:00", party_size=2)
        await http.post(
            f"{server.url}/api/reservations",
            json={
                "name": "A Very Large Party Indeed",
                "phone_number": "+6581234567",
                "reservation_date": day,
                "reservation_time": "19:00",
                "party_size": 12,
            },
        )
        async with open_book(browser, server.url, PHONE, "#week", ("status of 409",)) as page:
            await page.locator("#week-days button").nth(1).click()
            await expect(page.locator("#timeline")).to_be_visible()
            assert await page.evaluate(LAYOUT_PROBLEMS, CONTROLS) == []
            await page.screenshot(path=str(ARTIFACTS / "staff-phone-week.png"), full_page=True)
            for view in ("requests", "settings"):
                await page.click(f'[data-view-link="{view}"]')
                await expect(page.locator(f"#view-{view}")).to_be_visible()
                assert await page.evaluate(LAYOUT_PROBLEMS, CONTROLS) == [], view
            await expect(page.locator("#requests-list li")).to_have_count(1)
            await page.screenshot(path=str(ARTIFACTS / "staff-phone-settings.png"), full_page=True)
            await page.click('[data-view-link="book"]')
            await add_form(page, "Late", "+6561234567", day, "23:00")
            await page.click("#add-submit")
            await expect(page.locator("#add-refused")).to_be_visible()
            assert await page.evaluate(LAYOUT_PROBLEMS, "#add-dialog " + CONTROLS) == []
            await page.screenshot(path=str(ARTIFACTS / "staff-phone-refused.png"))


async def test_today_and_now_are_the_restaurants_whatever_the_browsers(browser, settings, server):
    """The profile's timezone (UTC+14) rules: not the browser's (Los Angeles, UTC-8) nor the
    server's setting (Singapore)."""
    zone = ZoneInfo("Pacific/Kiritimati")
    async with httpx.AsyncClient(timeout=10) as http:
        await put_profile(http, server.url, timezone="Pacific/Kiritimati")
        async with open_book(browser, server.url) as page:
            before = dt.datetime.now(zone)
            await expect(page.locator("#book-date")).to_have_value(before.date().isoformat())
            await page.get_by_role("button", name="Walk-in party of 2, now").click()
            await expect(page.locator("#walk-in-status")).to_contain_text("Walk-in of 2 booked")
            after = dt.datetime.now(zone)
        listed = await http.get(f"{server.url}/api/reservations", params={"status": "all"})
        (walk_in,) = listed.json()["items"]
        assert walk_in["reservation_date"] in {f"{before:%Y-%m-%d}", f"{after:%Y-%m-%d}"}
        assert walk_in["reservation_time"] in {f"{before:%H:%M}", f"{after:%H:%M}"}
