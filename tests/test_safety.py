"""Safe by default on the open internet, end to end over real sockets on loopback.

Same-origin browser sockets, per-client call limits (shared by server processes through
PostgreSQL), the REST rate limit, security headers and start-up warnings. Each test starts its
own server with the limits it means to test set small; every other test module turns them off.
Clients other than 127.0.0.1 are made the honest way: the server trusts 127.0.0.1 as a proxy
(`TRUSTED_PROXIES`) and the test, as that proxy, says who the client is in `X-Forwarded-For`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest
import websockets
from starlette.requests import HTTPConnection

import offline_model
from server.access.admission import Admission, Refusal
from server.access.call_slots import SharedCallSlots
from server.settings import Settings
from tests.conftest import LiveServer, serve_app

EVIL = "https://evil.example"
BOOK = "https://book.example.com"


@pytest.fixture(scope="module")
async def model():
    async with offline_model.OfflineModel(pace=0.002) as running:
        yield running


@pytest.fixture
async def calls_table(database) -> asyncpg.Pool:
    """The shared call counts, empty before and after the test."""
    pool = database.pool
    await pool.execute("TRUNCATE call_admissions")
    yield pool
    await pool.execute("TRUNCATE call_admissions")


@pytest.fixture
def base(settings: Settings, model, calls_table) -> Settings:
    return settings.model_copy(update={"openai_base_url": model.url})


@contextlib.asynccontextmanager
async def server(base: Settings, **update: object) -> AsyncIterator[LiveServer]:
    async with serve_app(base.model_copy(update=update)) as live:
        yield live


@contextlib.asynccontextmanager
async def held_call(live: LiveServer, **headers: str) -> AsyncIterator[websockets.ClientConnection]:
    """A call that got through: open until the block ends."""
    async with websockets.connect(
        f"{live.ws_url}/v1/realtime", additional_headers=headers, max_queue=None
    ) as ws:
        async with asyncio.timeout(10):
            while (event := orjson.loads(await ws.recv()))["type"] != "session.updated":
                assert event["type"] != "error", event
        yield ws


async def call_once(live: LiveServer, **headers: str) -> None:
    async with held_call(live, **headers):
        pass


async def refusal(live: LiveServer, **headers: str) -> tuple[str, str, int | None]:
    """(error code, its message, close code) of a call the server refuses."""
    async with websockets.connect(
        f"{live.ws_url}/v1/realtime", additional_headers=headers, max_queue=None
    ) as ws:
        async with asyncio.timeout(10):
            event = orjson.loads(await ws.recv())
            assert event["type"] == "error", f"the call was not refused: {event}"
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
    assert ws.close_code is not None
    return event["error"]["code"], event["error"]["message"], ws.close_code


async def admitted_once_released(live: LiveServer, **headers: str) -> None:
    """A new call gets through as soon as the server has let go of an ended one.

    Each try is a real handshake answered by the server (refused ones are not counted), so this
    waits on the server's state, not on time; bounded.
    """
    async with asyncio.timeout(10):
        while True:
            try:
                await call_once(live, **headers)
                return
            except AssertionError as refused:
                assert "too_many_calls" in str(refused)


def xff(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


# --- origins ----------------------------------------------------------------------------------


async def test_by_default_only_the_servers_own_pages_may_open_a_call(base, caplog):
    async with server(base) as live:
        await call_once(live, Origin=live.url)  # the page the server itself serves
        await call_once(live)  # no Origin: not a browser; the token rules decide (none set)
        port = live.url.rsplit(":", 1)[1]
        for other in (EVIL, f"http://localhost:{port}", "http://127.0.0.1:1", "null"):
            with caplog.at_level(logging.WARNING, logger="server.admission"):
                code, _, close = await refusal(live, Origin=other)
            assert (code, close) == ("origin_not_allowed", 1008)
            assert any(other in record.getMessage() for record in caplog.records), other


async def test_public_base_url_is_the_own_origin(base):
    async with server(base, public_base_url=f"{BOOK}/reservations") as live:
        await call_once(live, Origin=BOOK)
        assert (await refusal(live, Origin=live.url))[0] == "origin_not_allowed"


async def test_a_trusted_proxy_says_which_host_and_scheme_were_asked_for(base):
    behind_proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "book.example.com"}
    async with server(base, trusted_proxies="127.0.0.1") as live:
        await call_once(live, Origin=BOOK, **behind_proxy)
    async with server(base) as live:  # the same headers from a peer nobody trusts
        assert (await refusal(live, Origin=BOOK, **behind_proxy))[0] == "origin_not_allowed"


async def test_allowed_origins_add_origins_and_star_opens_it_on_purpose(base):
    async with server(base, allowed_origins=BOOK) as live:
        await call_once(live, Origin=BOOK)
        await call_once(live, Origin=live.url)  # the own origin stays allowed
        assert (await refusal(live, Origin=EVIL))[0] == "origin_not_allowed"
    async with server(base, allowed_origins="*") as live:
        await call_once(live, Origin=EVIL)


# --- per-client call limits -------------------------------------------------------------------


async def test_concurrent_calls_per_client_are_capped_with_1013(base):
    async with server(base, max_calls_per_client=2, max_new_calls_per_min=0) as live:
        async with held_call(live), held_call(live):
            code, message, close = await refusal(live)
            assert (code, close) == ("too_many_calls", 1013)
            assert "Too many calls" in message
        await admitted_once_released(live)


async def test_new_calls_per_minute_are_capped_with_1013_and_a_wait(base):
    async with server(base, max_calls_per_client=0, max_new_calls_per_min=2) as live:
        await call_once(live)
        await call_once(live)
        code, message, close = await refusal(live)
        assert (code, close) == ("too_many_new_calls", 1013)
        assert "Try again in" in message


async def test_the_call_limits_hold_across_server_processes(base):
    """Two servers on one database (two app instances, memories apart) share the counts."""
    limits = {"max_calls_per_client": 2, "max_new_calls_per_min": 0}
    async with server(base, **limits) as first, server(base, **limits) as second:
        async with held_call(first), held_call(second):
            assert (await refusal(first))[0] == "too_many_calls"
            assert (await refusal(second))[0] == "too_many_calls"
        await admitted_once_released(second)


async def test_new_calls_per_minute_hold_across_server_processes(base):
    limits = {"max_calls_per_client": 0, "max_new_calls_per_min": 3}
    async with server(base, **limits) as first, server(base, **limits) as second:
        await call_once(first)
        await call_once(first)
        await call_once(second)
        assert (await refusal(second))[0] == "too_many_new_calls"
        assert (await refusal(first))[0] == "too_many_new_calls"


async def test_a_trusted_proxys_client_address_counts_and_a_forged_one_does_not(base):
    limits = {"max_calls_per_client": 1, "max_new_calls_per_min": 0}
    async with server(base, trusted_proxies="127.0.0.1", **limits) as live:
        async with held_call(live, **xff("203.0.113.1")):
            async with held_call(live, **xff("203.0.113.2")):  # another client behind the proxy
                pass
            # What the client wrote at the left is not read: the proxy's entry is the client.
            assert (await refusal(live, **xff("198.51.100.9, 203.0.113.1")))[0] == "too_many_calls"
    async with server(base, **limits) as live:  # nobody trusted: the header is ignored
        async with held_call(live, **xff("203.0.113.1")):
            assert (await refusal(live, **xff("203.0.113.2")))[0] == "too_many_calls"


async def test_a_dead_process_calls_stop_counting_and_a_live_ones_count(base, calls_table):
    """Rows as a crashed process leaves them (lease run out) and as a live one keeps them."""
    await calls_table.execute(
        "INSERT INTO call_admissions (client, started_at, lease_until) VALUES"
        " ('203.0.113.50', now() - interval '10 minutes', now() - interval '1 second'),"
        " ('203.0.113.51', now() - interval '10 minutes', now() + interval '30 seconds')"
    )
    limits = {"max_calls_per_client": 1, "max_new_calls_per_min": 0}
    async with server(base, trusted_proxies="127.0.0.1", **limits) as live:
        async with held_call(live, **xff("203.0.113.50")):
            live_rows = await calls_table.fetchval(
                "SELECT count(*) FROM call_admissions"
                " WHERE client = '203.0.113.50' AND ended_at IS NULL AND lease_until > now()"
            )
            assert live_rows == 1  # this call's own row
        assert (await refusal(live, **xff("203.0.113.51")))[0] == "too_many_calls"
        await admitted_once_released(live, **xff("203.0.113.50"))
    assert (
        await calls_table.fetchval(
            "SELECT count(*) FROM call_admissions WHERE client = '203.0.113.50'"
            " AND ended_at IS NULL AND lease_until > now()"
        )
        == 0
    )  # every call of ours let go of its place


async def test_leases_are_renewed_and_old_rows_swept(calls_table):
    slots = SharedCallSlots(calls_table, max_live=5, per_min=0, lease_s=30.0)
    mine = await slots.take("203.0.113.60")
    assert isinstance(mine, int)
    await calls_table.execute(
        "UPDATE call_admissions SET lease_until = now() + interval '1 second' WHERE id = $1", mine
    )
    await calls_table.execute(
        "INSERT INTO call_admissions (client, started_at, ended_at, lease_until) VALUES"
        " ('old-ended', now() - interval '2 minutes', now() - interval '90 s', now()),"
        " ('old-dead', now() - interval '2 minutes', NULL, now() - interval '1 second'),"
        " ('old-live', now() - interval '2 minutes', NULL, now() + interval '20 seconds'),"
        " ('recent-ended', now() - interval '10 seconds', now(), now())"
    )
    await slots.renew({mine})
    assert await calls_table.fetchval(
        "SELECT lease_until > now() + interval '25 seconds' FROM call_admissions WHERE id = $1",
        mine,
    )
    left = {r["client"] for r in await calls_table.fetch("SELECT client FROM call_admissions")}
    # Ended or dead and older than the minute: gone. Live, or within the minute: kept.
    assert left == {"203.0.113.60", "old-live", "recent-ended"}


async def test_without_the_database_each_process_still_holds_its_own_limits(settings, test_dsn):
    limited = settings.model_copy(update={"max_calls_per_client": 1, "max_new_calls_per_min": 0})
    admission = Admission(limited)
    pool = await asyncpg.create_pool(test_dsn, min_size=1, max_size=1)
    await admission.start(pool)
    await pool.close()  # PostgreSQL is gone for this process
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "path": "/v1/realtime",
        "query_string": b"",
        "headers": [],
        "client": ("198.51.100.70", 5000),
    }
    try:
        async with admission.admit(HTTPConnection(scope)) as first:
            assert first is None  # let in, on this process's count alone
            async with admission.admit(HTTPConnection(scope)) as second:
                assert second is not None and second.error["error"]["code"] == "too_many_calls"
        async with admission.admit(HTTPConnection(scope)) as third:
            assert third is None
    finally:
        await admission.close()


async def test_a_call_refused_by_the_endpoint_after_counting_is_not_counted(settings, calls_table):
    """The endpoint's own checks run again after the counting; a refusal then takes it back."""
    limited = settings.model_copy(update={"max_calls_per_client": 1, "max_new_calls_per_min": 1})
    admission = Admission(limited)
    await admission.start(calls_table)
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "path": "/v1/realtime",
        "query_string": b"",
        "headers": [],
        "client": ("198.51.100.80", 5000),
    }
    busy = Refusal(1013, {"type": "error"}, "server at capacity")
    answers = iter([None, busy])  # capacity free before the counting, gone after it
    try:
        async with admission.admit(HTTPConnection(scope), also=lambda: next(answers)) as refused:
            assert refused is busy
        assert await calls_table.fetchval("SELECT count(*) FROM call_admissions") == 0
        async with admission.admit(HTTPConnection(scope)) as admitted:
            assert admitted is None  # neither the place nor the minute's one start was spent
            assert await calls_table.fetchval("SELECT count(*) FROM call_admissions") == 1
    finally:
        await admission.close()


async def test_max_sessions_holds_when_many_calls_arrive_at_once(base):
    """Admission awaits PostgreSQL; calls arriving meanwhile must not overrun MAX_SESSIONS."""
    limits = {"max_sessions": 2, "max_calls_per_client": 20, "max_new_calls_per_min": 0}
    async with server(base, **limits) as live:
        done = asyncio.Event()

        async def attempt() -> str:
            async with websockets.connect(f"{live.ws_url}/v1/realtime", max_queue=None) as ws:
                while (event := orjson.loads(await ws.recv()))["type"] != "session.updated":
                    if event["type"] == "error":
                        return str(event["error"]["code"])
                await done.wait()  # hold the place until every attempt has its answer
                return "admitted"

        attempts = [asyncio.create_task(attempt()) for _ in range(8)]
        pending = set(attempts)
        async with asyncio.timeout(20):
            while len(pending) > 2:  # the refused answer at once; the admitted ones wait
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            done.set()
            outcomes = sorted(await asyncio.gather(*attempts))
    assert outcomes == ["admitted"] * 2 + ["server_busy"] * 6


# --- REST -------------------------------------------------------------------------------------


async def test_rest_requests_per_minute_get_429_with_retry_after(base):
    async with (
        server(base, max_requests_per_min=3) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        for _ in range(3):
            assert (await http.get("/api/reservations/81230042")).status_code == 404
        refused = await http.get("/api/reservations/81230042")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "20"  # one request's share of the minute
        assert refused.json()["error"]["code"] == "rate_limited"
        posted = await http.post("/api/reservations", json={})
        assert posted.status_code == 429  # every /api/ route
        assert (await http.get("/healthz")).status_code == 200  # probes are not counted
        assert (await http.get("/")).status_code == 200  # nor pages


async def test_rest_limit_is_per_client_behind_a_trusted_proxy_only(base):
    async with (
        server(base, max_requests_per_min=1, trusted_proxies="127.0.0.1") as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        path = "/api/reservations/81230042"
        assert (await http.get(path, headers=xff("203.0.113.1"))).status_code == 404
        assert (await http.get(path, headers=xff("203.0.113.2"))).status_code == 404
        assert (await http.get(path, headers=xff("203.0.113.1"))).status_code == 429
        forged = xff("198.51.100.1, 203.0.113.2")
        assert (await http.get(path, headers=forged)).status_code == 429
    async with (
        server(base, max_requests_per_min=1) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        assert (await http.get(path, headers=xff("203.0.113.1"))).status_code == 404
        assert (await http.get(path, headers=xff("203.0.113.2"))).status_code == 429


# --- headers and warnings ---------------------------------------------------------------------


async def test_pages_and_assets_carry_the_security_headers(base):
    async with (
        server(base, allowed_origins=BOOK) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
    ):
        for path in ("/", "/js/main.js", "/js/capture-worklet.js", "/styles.css"):
            response = await http.get(path)
            assert response.status_code == 200, path
            policy = response.headers["content-security-policy"]
            assert "script-src 'self';" in policy
            assert f"connect-src 'self' {live.ws_url};" in policy
            assert f"frame-ancestors 'self' {BOOK}" in policy
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"


async def test_start_up_warns_about_each_unsafe_default_beyond_loopback(base, caplog):
    with caplog.at_level(logging.WARNING, logger="server.app"):
        async with server(base, host="0.0.0.0", allowed_origins="*"):
            pass
    lines = [r.getMessage() for r in caplog.records if r.name == "server.app"]
    assert [line.split(" ", 1)[0] for line in lines] == [
        "ACCESS_TOKEN",
        "STAFF_TOKEN",
        "ALLOWED_ORIGINS=*",
        "TWILIO_AUTH_TOKEN",  # the phone endpoints are open too (see tests/test_twilio.py)
    ]
