"""The outbox across real `python -m server` processes and a PostgreSQL restart: exactly one
text per booking with two senders at once, a sender SIGKILLed mid-send, a database that goes
away with texts waiting.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest

from harness.databases import throwaway_database
from server.book.database import open_database
from tests.servers import server_process
from tests.test_faults import own_postgres, start_postgres, stop_postgres  # noqa: F401
from tests.test_messages import ACCOUNT, AUTH, SENDER, booking, settled, sms_settings
from tests.twilio_fakes import FakeTwilioMessages

BOOKINGS = 100


async def eventually(check: Callable[[], Awaitable[bool]], tries: int = 300) -> None:
    """A condition another process reaches on its own: checked every 0.1 s, at most `tries`."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition was not reached in time")


@pytest.fixture
async def fresh_dsn(admin_dsn: str, settings) -> AsyncIterator[str]:
    async with throwaway_database(admin_dsn, "messages_proc") as dsn:
        ready = await open_database(settings.model_copy(update={"database_url": dsn}))
        await ready.close()
        yield dsn


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilioMessages]:
    async with FakeTwilioMessages().running() as twilio:
        yield twilio


def sms_env(fake: FakeTwilioMessages, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": AUTH,
        "SMS_FROM": SENDER,
        "TWILIO_API_BASE_URL": fake.url,
        "REMINDERS_BEFORE": "",
        "MESSAGE_POLL_S": "0.2",
        "PUBLIC_BASE_URL": "https://book.example.com",  # links alike from every process
        **extra,
    }


async def statuses(dsn: str) -> Counter[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return Counter(r["status"] for r in await conn.fetch("SELECT status FROM messages"))
    finally:
        await conn.close()


async def test_two_processes_send_each_confirmation_exactly_once(settings, fresh_dsn, fake):
    day = settings.today() + dt.timedelta(days=3)
    env = sms_env(fake)
    async with (
        server_process(fresh_dsn, **env) as first,
        server_process(fresh_dsn, **env) as second,
        httpx.AsyncClient(timeout=30) as http,
    ):

        async def book(n: int) -> int:
            url = (first, second)[n % 2].url
            body = booking(day, phone=f"+659200{n:04d}")
            return (await http.post(f"{url}/api/reservations", json=body)).status_code

        assert set(await asyncio.gather(*(book(n) for n in range(BOOKINGS)))) == {201}
        await fake.received(BOOKINGS, within_s=60)

        async def all_sent() -> bool:
            return (await statuses(fresh_dsn))["sent"] == BOOKINGS

        await eventually(all_sent)
        assert first.errors() == [] and second.errors() == []
    per_phone = Counter(r["To"] for r in fake.requests)
    assert len(per_phone) == BOOKINGS and set(per_phone.values()) == {1}
    assert await statuses(fresh_dsn) == Counter({"sent": BOOKINGS})


async def test_a_sender_killed_mid_send_leaves_the_text_to_another(settings, fresh_dsn, fake):
    day = settings.today() + dt.timedelta(days=3)
    env = sms_env(fake, MESSAGE_LEASE_S="3", TWILIO_TIMEOUT_S="2")
    fake.script = ["hang"]  # the first send never gets its answer
    async with server_process(fresh_dsn, **env) as doomed, httpx.AsyncClient() as http:
        made = await http.post(f"{doomed.url}/api/reservations", json=booking(day))
        assert made.status_code == 201
        await fake.received(1)
        doomed.process.kill()  # SIGKILL, mid-send
        await doomed.process.wait()
    assert await statuses(fresh_dsn) == Counter({"sending": 1})
    async with server_process(fresh_dsn, **env) as heir:
        second = (await fake.received(2, within_s=30))[1]  # once the lease has run out

        async def sent() -> bool:
            return (await statuses(fresh_dsn))["sent"] == 1

        await eventually(sent)
        assert heir.errors() == []
    assert second["Body"] == fake.requests[0]["Body"]  # the same text, now delivered
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await conn.fetchval("SELECT attempts FROM messages") == 2
    finally:
        await conn.close()


async def test_texts_waiting_survive_a_database_restart(own_postgres, settings, fake):  # noqa: F811
    from tests.conftest import serve_app

    config = sms_settings(
        settings, own_postgres.uri, fake, reminders_before="", db_command_timeout_s=2.0
    )
    day = settings.today() + dt.timedelta(days=3)
    async with serve_app(config) as live, httpx.AsyncClient(base_url=live.url) as http:
        sender = live.app.state.sender
        real_clock = sender.clock
        sender.clock = lambda: real_clock() - dt.timedelta(days=1)  # nothing is due yet
        for n in range(10):
            body = booking(day, phone=f"+659300{n:04d}")
            assert (await http.post("/api/reservations", json=body)).status_code == 201
        await asyncio.to_thread(stop_postgres, own_postgres)
        sender.clock = real_clock
        await sender.passed(1)  # a pass with the database away: logged, nothing lost
        assert fake.requests == []
        await asyncio.to_thread(start_postgres, own_postgres)
        await settled(live, live.app.state.pool, within_s=60)
    assert sorted(r["To"] for r in fake.requests) == [f"+659300{n:04d}" for n in range(10)]
