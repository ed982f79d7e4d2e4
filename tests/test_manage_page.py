"""The guest's manage page (`/r/<token>`) in Chromium: opened from the link in the text, the
booking cancelled with its button, a forged token refused, under the server's own strict CSP.
"""

from __future__ import annotations

import datetime as dt
import re

import httpx

from tests.test_messages import (
    GUEST,
    booking,
    db,  # noqa: F401
    fake,  # noqa: F401
    messages_db,  # noqa: F401
    rows,
    settled,
    sms_settings,
    texting_server,
)
from tests.test_page import ARTIFACTS, TIMEOUT_MS
from tests.test_staff_page import browser, expect, pytestmark  # noqa: F401  (Chromium, marks)


async def test_open_cancel_and_a_forged_link(browser, settings, messages_db, db, fake):  # noqa: F811
    day = settings.today() + dt.timedelta(days=2)
    config = sms_settings(settings, messages_db.dsn, fake, reminders_before="")
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        made = await http.post("/api/reservations", json=booking(day, "19:30", party=3))
        code = made.json()["confirmation_number"]
        text = (await fake.received(1))[0]["Body"]
        match = re.search(r"http://\S+/r/(\S+)", text)
        assert match is not None
        link, token = match.group(0), match.group(1)

        # A phone-sized window: the page is made for one.
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        context.set_default_timeout(TIMEOUT_MS)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type == "error" else None,
        )
        response = await page.goto(link)
        assert response.status == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        await expect(page.locator("h1")).to_have_text("Table for 3")
        await expect(page.locator(".code")).to_have_text(code)
        await expect(page.locator(".status")).to_have_text("Confirmed")
        # The stylesheet applied (CSP let our own in): the cancel button is full width.
        width = await page.locator("#cancel").evaluate("b => b.getBoundingClientRect().width")
        assert width > 300
        await page.screenshot(path=str(ARTIFACTS / "manage-page.png"), full_page=True)

        await page.locator("#cancel").click()
        await expect(page.locator(".status")).to_have_text("Cancelled")
        await expect(page.locator(".note")).to_have_text("Your booking is cancelled.")
        assert page.url.endswith(f"/r/{token}?done=cancelled")
        await expect(page.locator("#cancel")).to_have_count(0)

        history = await http.get(f"/api/reservations/{GUEST}/history")
        assert history.json()["items"][-1]["source"] == "guest"
        assert history.json()["items"][-1]["action"] == "cancelled"
        await settled(live, db)
        assert "is cancelled" in fake.bodies()[-1]

        assert problems == []  # no CSP refusal, no script error (there is no script)
        reservation_id, mac = token.split(".")
        forged = [
            f"{reservation_id}.{'A' * len(mac)}",  # the right booking, a made-up MAC
            f"{int(reservation_id) + 1}.{mac}",  # another booking, this MAC
            "not-a-token",
        ]
        for bad in forged:
            refused = await page.goto(f"{live.url}/r/{bad}")
            assert refused.status == 404
            await expect(page.locator("h1")).to_have_text("This link does not work")
            assert code not in await page.content()
            posted = await http.post(f"/r/{bad}", data={"action": "cancel"})
            assert posted.status_code == 404
        await context.close()
    assert [r["kind"] for r in await rows(db, status="sent")] == ["confirmation", "cancellation"]
