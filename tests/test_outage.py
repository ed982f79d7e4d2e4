"""PostgreSQL restarted under two server processes and hundreds of requests in flight.

Every answer while the database is away must be a JSON 503 `database_unavailable`, never a 500:
asyncpg raises many different things when the server vanishes mid-request (InternalClientError
"cannot switch to state 12" from bind_execute and from the pool's release among them), and all of
them go through `server.db_errors`. Afterwards everything works again, the live feed included.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

import httpx

from server.book.database import open_database
from tests.servers import server_process
from tests.test_faults import own_postgres, start_postgres, stop_postgres  # noqa: F401
from tests.test_staff_api import Feed

WORKERS = 200  # requests in flight at once, across both processes
RESTARTS = 2


async def test_postgres_restart_under_a_burst_is_503_never_500(own_postgres, settings):  # noqa: F811
    ready = await open_database(
        settings.model_copy(update={"database_url": own_postgres.uri}), run_migrations=True
    )
    await ready.close()
    day = (settings.today() + dt.timedelta(days=2)).isoformat()
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    progress = asyncio.Condition()
    running = True

    async def request(http: httpx.AsyncClient, url: str, n: int) -> httpx.Response:
        phone = f"+65831{n % 50_000:05d}"
        kind = n % 5
        if kind == 0:
            body = {
                "name": "Burst",
                "phone_number": phone,
                "reservation_date": day,
                "reservation_time": "19:00",
                "party_size": 2,
            }
            return await http.post(f"{url}/api/reservations", json=body)
        if kind == 1:
            return await http.get(f"{url}/api/reservations/{phone}")
        if kind == 2:
            return await http.patch(f"{url}/api/reservations/{phone}", json={"party_size": 3})
        if kind == 3:
            return await http.get(f"{url}/api/reservations", params={"date": day, "limit": "5"})
        return await http.delete(f"{url}/api/reservations/{phone}")

    async def worker(http: httpx.AsyncClient, urls: list[str], index: int) -> None:
        n = index
        while running:
            n += WORKERS
            response = await request(http, urls[n % 2], n)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                code = response.json().get("error", {}).get("code")
                if (response.status_code, code) != (503, "database_unavailable"):
                    wrong.append(f"{response.status_code} {response.text[:200]}")
            async with progress:
                progress.notify_all()

    async def until(condition, within_s: float = 60) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(within_s), progress:
            await progress.wait_for(condition)

    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    env = {"DB_COMMAND_TIMEOUT_S": "2", "DB_CONNECT_TIMEOUT_S": "2"}
    async with (
        server_process(own_postgres.uri, **env) as first,
        server_process(own_postgres.uri, **env) as second,
        httpx.AsyncClient(timeout=30, limits=limits) as http,
    ):
        urls = [first.url, second.url]
        workers = [asyncio.create_task(worker(http, urls, i)) for i in range(WORKERS)]
        try:
            for _ in range(RESTARTS):
                served = statuses[200] + statuses[201]
                await until(lambda s=served: statuses[200] + statuses[201] >= s + WORKERS // 2)
                refused = statuses[503]
                await asyncio.to_thread(stop_postgres, own_postgres)
                await until(lambda r=refused: statuses[503] >= r + WORKERS)
                await asyncio.to_thread(start_postgres, own_postgres)
            served = statuses[200] + statuses[201]
            await until(lambda s=served: statuses[200] + statuses[201] >= s + WORKERS // 2)
        finally:
            running = False
            await asyncio.gather(*workers, return_exceptions=True)

        # After the restarts the live feed of each process is back: a change made through one
        # process reaches a stream on the other.
        async with http.stream("GET", f"{first.url}/api/reservations/events") as stream:
            feed = Feed(stream)
            await feed.next(within_s=10)
            body = {
                "name": "After Restart",
                "phone_number": "+6583999999",
                "reservation_date": day,
                "reservation_time": "20:00",
                "party_size": 2,
            }
            made = await http.post(f"{second.url}/api/reservations", json=body)
            assert made.status_code == 201
            event = await feed.next(within_s=15)
            assert event["data"]["after"]["phone_number"] == "+6583999999"
        logged = first.errors() + second.errors()

    assert wrong == []
    assert 500 not in statuses
    assert set(statuses) <= {200, 201, 404, 409, 503}, statuses
    assert statuses[503] >= RESTARTS * WORKERS
    assert sum(statuses.values()) >= 1_000
    assert not [line for line in logged if "unhandled error" in line], logged[:3]
