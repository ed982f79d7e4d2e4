"""Guest texts through a fake Twilio Messages API (real HTTP on loopback, the `twilio` library
pointed at it): one text per booking event, reminders, STOP/START/HELP, signatures, retries.

These tests use a database of their own: a sender of another test's server on the shared one
would claim their rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from harness.databases import throwaway_database
from harness.processes import free_port
from server.book import reservations, restaurant
from server.book.database import Database, open_database
from server.book.models import ReservationRequest
from server.book.reservations import Origin
from server.settings import Settings
from tests.conftest import LiveServer, serve_app
from tests.twilio_fakes import FakeTwilioMessages, sign_webhook

AUTH = "twilio-auth-token-for-tests"
ACCOUNT = "AC" + "2" * 32
SENDER = "+6560001111"
GUEST = "+6591110000"
TIMEOUT = 15


@pytest.fixture(scope="module")
async def messages_db(admin_dsn: str, settings: Settings) -> AsyncIterator[Database]:
    async with throwaway_database(admin_dsn, "messages_test") as dsn:
        db = await open_database(settings.model_copy(update={"database_url": dsn}))
        yield db  # pytest finishes the fixture whatever the tests did
        await db.close()


@pytest.fixture
async def db(messages_db: Database) -> asyncpg.Pool:
    await messages_db.pool.execute(
        "TRUNCATE reservations, reservation_history, messages, sms_opt_outs, sms_replies"
    )
    return messages_db.pool


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilioMessages]:
    async with FakeTwilioMessages().running() as twilio:
        yield twilio


def sms_settings(settings: Settings, dsn: str, fake: FakeTwilioMessages, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": dsn,
        "openai_base_url": "http://127.0.0.1:9/v1",  # no model needed: no offline model started
        "twilio_account_sid": ACCOUNT,
        "twilio_auth_token": SecretStr(AUTH),
        "sms_from": SENDER,
        "twilio_api_base_url": fake.url,
        "reminders_before": "90m,30m",
        **extra,
    }
    return settings.model_copy(update=values)


@contextlib.asynccontextmanager
async def texting_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The app with PUBLIC_BASE_URL = its own loopback address (links and callbacks point here)."""
    port = free_port()
    settings = settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    async with serve_app(settings, port=port) as live:
        yield live


def booking(
    day: dt.date, time: str = "12:00", party: int = 2, phone: str = GUEST
) -> dict[str, Any]:
    return {
        "name": "Ada Lovelace",
        "phone_number": phone,
        "reservation_date": day.isoformat(),
        "reservation_time": time,
        "party_size": party,
    }


async def rows(pool: asyncpg.Pool, **where: Any) -> list[asyncpg.Record]:
    sql = "SELECT * FROM messages"
    if where:
        sql += " WHERE " + " AND ".join(f"{k} = ${i + 1}" for i, k in enumerate(where))
    return list(await pool.fetch(sql + " ORDER BY id", *where.values()))


async def settled(live: LiveServer, pool: asyncpg.Pool, within_s: float = TIMEOUT) -> None:
    """Until nothing is being sent and nothing is due at the server's sender's "now" (each
    check after another full pass of its sender)."""
    sender = live.app.state.sender
    async with asyncio.timeout(within_s):
        while await pool.fetchval(
            "SELECT count(*) FROM messages WHERE status = 'sending'"
            " OR (status = 'pending' AND next_attempt_at <= $1)",
            sender.clock(),
        ):
            await sender.passed(1)


def local(settings: Settings, day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), tzinfo=settings.timezone)


# --- one text per booking event --------------------------------------------------------------


async def test_each_booking_event_sends_one_text_with_its_link(settings, messages_db, db, fake):
    day = settings.today() + dt.timedelta(days=2)
    config = sms_settings(settings, messages_db.dsn, fake)
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        made = await http.post("/api/reservations", json=booking(day))
        assert made.status_code == 201
        code = made.json()["confirmation_number"]
        first = (await fake.received(1))[0]
        assert first["To"] == GUEST and first["From"] == SENDER
        assert first["_account"] == ACCOUNT and first["_authorization"].startswith("Basic ")
        assert first["StatusCallback"] == f"{live.url}/twilio/sms-status"
        body = first["Body"]
        when = f"{day:%a} {day.day} {day:%b} at 12:00"
        assert body.startswith(f"{settings.restaurant_name}: you're booked for 2 guests on {when}")
        assert f"Confirmation {code}" in body and GUEST not in body
        link = re.search(r"(http://\S+/r/(\S+))", body)
        assert link is not None and link.group(1).startswith(f"{live.url}/r/")
        page = await http.get(link.group(1))
        assert page.status_code == 200 and code in page.text and "Ada Lovelace" in page.text

        changed = await http.patch(f"/api/reservations/{GUEST}", json={"party_size": 4})
        assert changed.status_code == 200
        second = (await fake.received(2))[1]["Body"]
        assert f"your booking is now for 4 guests on {when} (was 2 guests on {when})" in second
        assert link.group(1) in second  # the same booking, the same link

        assert (await http.delete(f"/api/reservations/{GUEST}")).status_code == 200
        third = (await fake.received(3))[2]["Body"]
        assert f"your booking for 4 guests on {when} ({code}) is cancelled" in third
        await settled(live, db)
        listed = await http.get("/api/messages", params={"phone": GUEST})
    assert len(fake.requests) == 3
    kinds = {item["kind"]: item for item in listed.json()["items"]}
    assert set(kinds) >= {"confirmation", "change", "cancellation", "reminder"}
    for kind in ("confirmation", "change", "cancellation"):
        assert kinds[kind]["status"] == "sent" and kinds[kind]["twilio_sid"].startswith("SM")
        assert kinds[kind]["attempts"] == 1
    # The cancelled booking's reminders were dropped, never sent.
    assert {r["status"] for r in await rows(db, kind="reminder")} == {"dropped"}


async def test_a_rolled_back_change_writes_no_text(settings, messages_db, db):
    day = settings.today() + dt.timedelta(days=2)
    request = ReservationRequest.model_validate(booking(day))
    made = await reservations.book(db, request, settings.today())
    assert len(await rows(db, kind="confirmation")) == 1
    before = len(await rows(db))
    with pytest.raises(RuntimeError):
        async with db.acquire() as conn, conn.transaction():
            after = reservations.Reservation.from_row(
                await conn.fetchrow(reservations.CANCEL_SQL, made.reservation.id)
            )
            await reservations._record(conn, "cancelled", Origin("rest"), made.reservation, after)
            assert len(await conn.fetch("SELECT id FROM messages")) > before  # written ...
            raise RuntimeError("the change fails after its history row")
    assert len(await rows(db)) == before  # ... and gone with the rollback


async def test_without_the_account_settings_texts_are_skipped(settings, messages_db, db):
    config = settings.model_copy(
        update={"database_url": messages_db.dsn, "openai_base_url": "http://127.0.0.1:9/v1"}
    )
    day = settings.today() + dt.timedelta(days=2)
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.post("/api/reservations", json=booking(day))).status_code == 201
        await settled(live, db)
        listed = (await http.get("/api/messages", params={"date": day.isoformat()})).json()
    assert listed["configured"] is False
    (confirmation,) = [i for i in listed["items"] if i["kind"] == "confirmation"]
    assert confirmation["status"] == "skipped_not_configured"
    assert confirmation["body"].startswith(f"{settings.restaurant_name}: you're booked")


async def test_a_request_is_acknowledged_then_answered(settings, messages_db, db, fake):
    """A party over the limit is a request: "we received it", then staff's yes or no; a guest
    withdrawing theirs is told so, not that it was declined."""
    await restaurant.update(db, settings, {"availability": "rules", "max_party_size": 8})
    day = settings.today() + dt.timedelta(days=3)
    today = settings.today()
    staff = Origin("staff")
    config = sms_settings(settings, messages_db.dsn, fake)
    try:
        async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:

            async def ask(phone: str, party: int) -> reservations.Reservation:
                request = ReservationRequest.model_validate(booking(day, "19:00", party, phone))
                made = await reservations.book(db, request, today, staff)
                assert made.reservation.status == "requested"
                return made.reservation

            await ask(GUEST, 12)
            assert "we received your request for 12 guests" in (await fake.received(1))[0]["Body"]
            assert await rows(db, kind="reminder") == []  # a request gets no reminders yet
            await reservations.confirm(db, GUEST, today, staff)
            confirmed = (await fake.received(2))[1]["Body"]
            assert "your request is confirmed: 12 guests" in confirmed
            # ... a confirmed booking does (written through this test's pool: 24h,2h)
            assert len(await rows(db, kind="reminder", status="pending")) == 2

            await ask("+6591110001", 10)
            await fake.received(3)
            await reservations.cancel(db, "+6591110001", today, staff)
            declined = (await fake.received(4))[3]["Body"]
            assert "sorry, we cannot take your request for 10 guests" in declined

            await ask("+6591110002", 9)
            link = re.search(r"http://\S+/r/\S+", (await fake.received(5))[4]["Body"])
            assert link is not None
            page = await http.post(link.group(0), data={"action": "cancel"})
            assert page.status_code == 303
            withdrawn = (await fake.received(6))[5]["Body"]
            assert "your request for 9 guests" in withdrawn and "is withdrawn" in withdrawn
            await settled(live, db)
    finally:
        await restaurant.update(db, settings, {"availability": "always"})
    events = [(r["kind"], r["event"]) for r in await rows(db, status="sent")]
    assert sorted(events) == sorted(
        [
            ("request", "created"),
            ("confirmation", "confirmed"),
            ("request", "created"),
            ("cancellation", "declined"),
            ("request", "created"),
            ("cancellation", "declined"),
        ]
    )


# --- reminders -------------------------------------------------------------------------------


async def test_reminders_are_sent_move_with_a_change_and_drop_on_cancel(
    settings, messages_db, db, fake
):
    day = settings.today() + dt.timedelta(days=1)
    config = sms_settings(settings, messages_db.dsn, fake)
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        sender = live.app.state.sender

        async def at(clock: str) -> None:  # "now" is tomorrow at `clock`, then one full pass
            moment = local(settings, day, clock)
            sender.clock = lambda: moment
            await sender.passed(2)

        assert (await http.post("/api/reservations", json=booking(day, "12:00"))).status_code == 201
        await fake.received(1)
        pending = await rows(db, kind="reminder", status="pending")
        assert [r["due_at"] for r in pending] == [
            local(settings, day, "10:30"),
            local(settings, day, "11:30"),
        ]
        await at("10:29")
        assert len(fake.requests) == 1  # not yet due
        await at("10:31")
        assert "see you in 90 minutes! Your table for 2 guests" in fake.bodies()[1]
        assert "at 12:00" in fake.bodies()[1]

        await http.patch(f"/api/reservations/{GUEST}", json={"reservation_time": "13:00"})
        await fake.received(3)  # the change
        await at("11:31")  # the 12:00 booking's 30-minute reminder would have been due
        assert len(fake.requests) == 4
        assert "see you in 90 minutes!" in fake.bodies()[3] and "at 13:00" in fake.bodies()[3]

        await http.delete(f"/api/reservations/{GUEST}")
        await fake.received(5)  # the cancellation
        await at("12:31")  # the 13:00 booking's 30-minute reminder: dropped with the booking
    sent = sorted(await rows(db, status="sent"), key=lambda r: r["sent_at"])
    kinds = [r["kind"] for r in sent]
    assert kinds == ["confirmation", "reminder", "change", "reminder", "cancellation"]
    assert len(fake.requests) == 5
    assert len(await rows(db, kind="reminder", status="dropped")) == 2


# --- replies and delivery reports ------------------------------------------------------------


async def post_signed(
    http: httpx.AsyncClient, url: str, form: dict[str, str], signature: str | None = None
) -> httpx.Response:
    headers = {"X-Twilio-Signature": signature or sign_webhook(AUTH, url, form)}
    return await http.post(url, data=form, headers=headers)


async def test_stop_start_help_and_replies(settings, messages_db, db, fake):
    day = settings.today() + dt.timedelta(days=2)
    config = sms_settings(settings, messages_db.dsn, fake, restaurant_phone="+6562223333")
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        url = f"{live.url}/twilio/sms"

        async def reply(text: str, n: int) -> httpx.Response:
            form = {"From": GUEST, "To": SENDER, "Body": text, "MessageSid": f"SMin{n}"}
            response = await post_signed(http, url, form)
            assert response.status_code == 200, response.text
            return response

        await reply("  stop ", 1)
        assert (await http.post("/api/reservations", json=booking(day))).status_code == 201
        await settled(live, db)
        (confirmation,) = await rows(db, kind="confirmation")
        assert confirmation["status"] == "skipped_opted_out" and fake.requests == []

        await reply("START", 2)
        await http.patch(f"/api/reservations/{GUEST}", json={"party_size": 3})
        assert "now for 3 guests" in (await fake.received(1))[0]["Body"]

        helped = ET.fromstring((await reply("help", 3)).text)
        text = helped.findtext("Message") or ""
        assert settings.restaurant_name in text and "+6562223333" in text

        await reply("Can we bring a dog?", 4)
        await reply("Can we bring a dog?", 4)  # Twilio delivering the same reply twice
        for word in ("UNSUBSCRIBE", "quit", "End", "CANCEL", "stopall"):
            await reply(word, 5)
            assert await db.fetchval("SELECT count(*) FROM sms_opt_outs") == 1
            await reply("unstop", 6)
            assert await db.fetchval("SELECT count(*) FROM sms_opt_outs") == 0
        listed = (await http.get("/api/messages", params={"phone": GUEST})).json()
    assert [r["body"] for r in listed["replies"]] == ["Can we bring a dog?"]


async def test_webhooks_refuse_missing_and_wrong_signatures(settings, messages_db, db, fake):
    config = sms_settings(settings, messages_db.dsn, fake)
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        form = {"From": GUEST, "Body": "STOP", "MessageSid": "SMx"}
        for path in ("/twilio/sms", "/twilio/sms-status"):
            url = live.url + path
            unsigned = await http.post(url, data=form)
            forged = sign_webhook("another-token", url, form)
            wrong = await post_signed(http, url, form, forged)
            tampered = await http.post(
                url,
                data={**form, "Body": "START"},
                headers={"X-Twilio-Signature": sign_webhook(AUTH, url, form)},
            )
            for response in (unsigned, wrong, tampered):
                assert response.status_code == 403
                assert response.json()["error"]["code"] == "invalid_signature"
    assert await db.fetchval("SELECT count(*) FROM sms_opt_outs") == 0


async def test_delivery_reports_update_the_text(settings, messages_db, db, fake):
    day = settings.today() + dt.timedelta(days=2)
    config = sms_settings(settings, messages_db.dsn, fake)
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        await http.post("/api/reservations", json=booking(day))
        await fake.received(1)
        await settled(live, db)
        (sent,) = await rows(db, kind="confirmation")
        url = f"{live.url}/twilio/sms-status"
        for status in ("delivered", "sent"):  # a late "sent" does not undo "delivered"
            form = {"MessageSid": sent["twilio_sid"], "MessageStatus": status}
            assert (await post_signed(http, url, form)).status_code == 204
        (delivered,) = await rows(db, kind="confirmation")
        assert delivered["status"] == "delivered"
        form = {
            "MessageSid": sent["twilio_sid"],
            "MessageStatus": "undelivered",
            "ErrorCode": "30003",
        }
        assert (await post_signed(http, url, form)).status_code == 204
    (failed,) = await rows(db, kind="confirmation")
    assert failed["status"] == "failed" and "30003" in failed["error"]


# --- retries ---------------------------------------------------------------------------------


async def test_5xx_429_and_timeouts_are_retried_then_failed(settings, messages_db, db, fake):
    day = settings.today() + dt.timedelta(days=2)
    config = sms_settings(
        settings,
        messages_db.dsn,
        fake,
        message_max_attempts=3,
        twilio_timeout_s=0.5,
        message_lease_s=5.0,
        reminders_before="",
    )
    fake.script = [503, 429, "hang", 500, 201, 400]
    async with texting_server(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        sender = live.app.state.sender
        start = sender.clock()

        async def later(hours: int) -> None:  # past any backoff, then one full pass
            sender.clock = lambda: start + dt.timedelta(hours=hours)
            await sender.passed(2)

        await http.post("/api/reservations", json=booking(day))
        await fake.received(1)
        await settled(live, db)
        (row,) = await rows(db)
        assert (row["status"], row["attempts"]) == ("pending", 1) and "503" in row["error"]
        await later(1)
        await later(2)  # the third attempt hangs past TWILIO_TIMEOUT_S: the last one
        (row,) = await rows(db)
        assert (row["status"], row["attempts"]) == ("failed", 3)
        assert "no answer from Twilio" in row["error"]
        assert len(fake.requests) == 3

        other = booking(day, phone="+6591110001")
        await http.post("/api/reservations", json=other)
        await fake.received(4)  # 500 ...
        await settled(live, db)
        await later(3)
        await fake.received(5)  # ... then accepted
        await settled(live, db)
        third = booking(day, phone="+6591110002")
        await http.post("/api/reservations", json=third)
        await fake.received(6)  # 400: Twilio refuses the number, no retry
        await settled(live, db)
        await later(4)
    statuses = {r["phone_number"]: (r["status"], r["attempts"]) for r in await rows(db)}
    assert statuses["+6591110001"] == ("sent", 2)
    assert statuses["+6591110002"] == ("failed", 1)
    assert len(fake.requests) == 6
