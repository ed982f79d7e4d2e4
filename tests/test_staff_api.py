"""The staff's REST over real HTTP: change, cancel, the book, history, who may, the live feed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from server.access.staff_auth import is_loopback, staff_refusal
from server.book.etag import etag_of
from server.book.live_feed import APPLICATION_NAME
from tests.conftest import serve_app

PHONE = "+6598207272"


@pytest.fixture
async def client(live_server, pool) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        yield http


def day(settings, days: int = 3) -> str:
    return (settings.today() + dt.timedelta(days=days)).isoformat()


async def book(http: httpx.AsyncClient, settings, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Ada Lovelace",
        "phone_number": PHONE,
        "reservation_date": day(settings),
        "reservation_time": "19:30",
        "party_size": 4,
        "other_info": {"notes": "window seat"},
    }
    body.update(overrides)
    response = await http.post("/api/reservations", json=body)
    assert response.status_code == 201, response.text
    return response.json()


# --- change ----------------------------------------------------------------------------------


async def test_change_keeps_the_confirmation_number(client, settings, pool):
    made = await book(client, settings)
    response = await client.patch(
        f"/api/reservations/{PHONE}", json={"reservation_time": "20:00", "party_size": 6}
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["confirmation_number"] == made["confirmation_number"]
    assert (changed["reservation_time"], changed["party_size"]) == ("20:00", 6)
    assert changed["name"] == made["name"] and changed["other_info"] == made["other_info"]
    assert (await client.get(f"/api/reservations/{PHONE}")).json() == changed
    row = await pool.fetchrow("SELECT reservation_time, party_size FROM reservations")
    assert (row["reservation_time"], row["party_size"]) == (dt.time(20, 0), 6)


async def test_change_refusals_are_specific(client, settings):
    missing = await client.patch("/api/reservations/+6581234567", json={"party_size": 2})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "reservation_not_found"
    await book(client, settings)
    invalid = await client.patch(
        f"/api/reservations/{PHONE}",
        json={"party_size": 0, "reservation_date": "2020-01-01", "phone_number": "+6581234567"},
    )
    assert invalid.status_code == 422
    fields = invalid.json()["error"]["fields"]
    assert set(fields) == {"party_size", "reservation_date", "phone_number"}
    assert "in the past" in fields["reservation_date"]
    for body, field in [({}, "body"), ({"name": None}, "name"), ({"tables": 2}, "tables")]:
        response = await client.patch(f"/api/reservations/{PHONE}", json=body)
        assert response.status_code == 422
        assert set(response.json()["error"]["fields"]) == {field}
    assert (await client.patch("/api/reservations/123", json={"party_size": 2})).status_code == 422
    bad_json = await client.patch(f"/api/reservations/{PHONE}", content=b"{")
    assert bad_json.json()["error"]["code"] == "invalid_json"


# --- cancel ----------------------------------------------------------------------------------


async def test_cancel_then_404_then_a_new_booking_gets_a_new_number(client, settings):
    made = await book(client, settings)
    cancelled = await client.delete(f"/api/reservations/{PHONE}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["confirmation_number"] == made["confirmation_number"]
    assert (await client.get(f"/api/reservations/{PHONE}")).status_code == 404
    again = await client.delete(f"/api/reservations/{PHONE}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "reservation_not_found"
    rebooked = await book(client, settings)
    assert rebooked["confirmation_number"] != made["confirmation_number"]
    assert rebooked["status"] == "confirmed"


# --- the book --------------------------------------------------------------------------------


async def test_list_orders_filters_and_pages_with_a_cursor(client, settings):
    times = ["21:00", "18:00", "19:30", "18:00", "20:15"]
    phones = [f"+658123456{n}" for n in range(len(times))]
    for phone, clock in zip(phones, times, strict=True):
        await book(client, settings, phone_number=phone, reservation_time=clock)
    await book(client, settings, phone_number="+6581234599", reservation_date=day(settings, 4))
    await client.delete(f"/api/reservations/{phones[2]}")

    seen, cursor = [], None
    while True:
        params = {"date": day(settings), "status": "all", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/reservations", params=params)).json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [r["reservation_time"] for r in seen] == sorted(times)
    assert len({r["phone_number"] for r in seen}) == 5

    confirmed = (await client.get("/api/reservations", params={"date": day(settings)})).json()
    assert len(confirmed["items"]) == 4 and confirmed["next_cursor"] is None
    cancelled = await client.get(
        "/api/reservations", params={"date": day(settings), "status": "cancelled"}
    )
    assert [r["phone_number"] for r in cancelled.json()["items"]] == [phones[2]]
    upcoming = (await client.get("/api/reservations")).json()["items"]
    assert len(upcoming) == 5 and upcoming[-1]["reservation_date"] == day(settings, 4)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "gone"}, "status"),
        ({"date": "12/01/2026"}, "date"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"sort": "name"}, "sort"),
    ],
)
async def test_list_refuses_bad_parameters(client, params, field):
    response = await client.get("/api/reservations", params=params)
    assert response.status_code == 422
    assert set(response.json()["error"]["fields"]) == {field}


# --- history ---------------------------------------------------------------------------------


async def test_history_tells_everything_oldest_first(client, settings, pool):
    await pool.execute(  # a past booking, made before this feature: replaced by the next one
        "INSERT INTO reservations (phone_number, name, reservation_date, reservation_time,"
        " party_size, confirmation_number) VALUES ($1, 'Old Guest', $2, '12:00', 2, 'PASTXY')",
        PHONE,
        settings.today() - dt.timedelta(days=7),
    )
    made = await book(client, settings)
    await client.patch(
        f"/api/reservations/{PHONE}", json={"party_size": 5}, headers={"X-Source": "staff"}
    )
    await client.delete(f"/api/reservations/{PHONE}")
    history = (await client.get(f"/api/reservations/{PHONE}/history")).json()["items"]
    assert [e["action"] for e in history] == ["replaced", "changed", "cancelled"]
    assert [e["source"] for e in history] == ["rest", "staff", "rest"]
    assert all(e["call"] is None for e in history)
    replaced, changed, cancelled = history
    assert replaced["before"]["confirmation_number"] == "PASTXY"
    assert replaced["after"]["confirmation_number"] == made["confirmation_number"]
    assert (changed["before"]["party_size"], changed["after"]["party_size"]) == (4, 5)
    assert cancelled["before"] == changed["after"] | {
        "updated_at": cancelled["before"]["updated_at"]
    }
    assert cancelled["after"]["status"] == "cancelled"
    assert history[0]["id"] < history[1]["id"] < history[2]["id"]
    assert (await client.get("/api/reservations/+6581234567/history")).json() == {"items": []}
    refused = await client.patch(
        f"/api/reservations/{PHONE}", json={"party_size": 2}, headers={"X-Source": "voice"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_source"


async def test_history_is_append_only(pool, client, settings):
    await book(client, settings)
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("DELETE FROM reservation_history")
    with pytest.raises(Exception, match="append-only"):
        await pool.execute("UPDATE reservation_history SET source = 'staff'")


# --- who may ---------------------------------------------------------------------------------


STAFF_ROUTES = [
    ("GET", "/api/reservations", None),
    ("GET", f"/api/reservations/{PHONE}/history", None),
    ("PATCH", f"/api/reservations/{PHONE}", {"party_size": 2}),
    ("DELETE", f"/api/reservations/{PHONE}", None),
    ("GET", "/api/reservations/events", None),
]


async def test_with_staff_token_the_access_token_is_not_enough(settings, pool):
    locked = settings.model_copy(
        update={"staff_token": SecretStr("s3cret"), "access_token": SecretStr("caller-key")}
    )
    async with serve_app(locked) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        for method, path, body in STAFF_ROUTES:
            for auth in (None, "Bearer caller-key", "Bearer s3cre", "s3cret"):
                headers = {"Authorization": auth} if auth else {}
                response = await http.request(method, path, json=body, headers=headers)
                assert response.status_code == 401, (method, path, auth)
                error = response.json()["error"]
                assert error["code"] == "staff_unauthorized" and "STAFF_TOKEN" in error["message"]
        staff = {"Authorization": "Bearer s3cret"}
        assert (await http.get("/api/reservations", headers=staff)).status_code == 200
        missing = await http.delete(f"/api/reservations/{PHONE}", headers=staff)
        assert missing.status_code == 404
        # Create and lookup keep today's rule: the callers' access token.
        assert (await http.get(f"/api/reservations/{PHONE}", headers=staff)).status_code == 401
        lookup = await http.get(
            f"/api/reservations/{PHONE}", headers={"Authorization": "Bearer caller-key"}
        )
        assert lookup.status_code == 404


async def test_without_staff_token_only_this_machine_may(live_server, pool):
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        assert (await http.get("/api/reservations")).status_code == 200  # loopback
        for method, path, body in STAFF_ROUTES:
            # Through a reverse proxy (uvicorn reads X-Forwarded-For from 127.0.0.1):
            # the client is elsewhere, so it is refused.
            proxied = {"X-Forwarded-For": "203.0.113.7"}
            response = await http.request(method, path, json=body, headers=proxied)
            assert response.status_code == 403, (method, path)
            error = response.json()["error"]
            assert error["code"] == "staff_forbidden" and "STAFF_TOKEN" in error["message"]


def test_the_staff_rule_itself(settings):
    open_ = settings.model_copy(update={"staff_token": None})
    assert staff_refusal({}, "127.0.0.1", open_) is None
    assert staff_refusal({}, "::1", open_) is None
    assert staff_refusal({}, "::ffff:127.0.0.1", open_) is None
    for host in ("10.0.0.5", "203.0.113.7", None, "localhost", "garbage"):
        assert staff_refusal({}, host, open_).status == 403
    assert staff_refusal({"x-real-ip": "10.0.0.5"}, "127.0.0.1", open_).status == 403
    locked = settings.model_copy(update={"staff_token": SecretStr("tok")})
    assert staff_refusal({"authorization": "Bearer tok"}, "203.0.113.7", locked) is None
    assert staff_refusal({}, "127.0.0.1", locked).status == 401  # loopback is not enough
    assert not is_loopback("128.0.0.1")


# --- the live feed ---------------------------------------------------------------------------


class Feed:
    """An SSE client of our own: reads `event`/`id`/`data` blocks from a streamed response."""

    def __init__(self, response: httpx.Response):
        self.lines = response.aiter_lines()

    async def next(self, within_s: float = 5.0) -> dict[str, Any]:
        event: dict[str, Any] = {}
        async with asyncio.timeout(within_s):
            async for line in self.lines:
                if not line:
                    if "data" in event:
                        return event
                    event = {}
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(": ")
                event[field] = orjson.loads(value) if field == "data" else value
        raise AssertionError("the feed ended")


async def test_the_feed_pushes_changes_and_resumes_after_last_event_id(client, settings):
    async with client.stream("GET", "/api/reservations/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        feed = Feed(response)
        ready = await feed.next()
        assert ready["event"] == "ready" and ready["data"]["today"] == settings.today().isoformat()
        made = await book(client, settings)
        created = await feed.next()
        assert created["event"] == "change" and created["data"]["action"] == "created"
        assert created["data"]["after"] == {**made, "etag": etag_of(made)}
        assert int(created["id"]) > int(ready["id"])
    # Changes made while nobody listens are replayed after the last id seen.
    await client.patch(f"/api/reservations/{PHONE}", json={"party_size": 2})
    await client.delete(f"/api/reservations/{PHONE}")
    headers = {"Last-Event-ID": created["id"]}
    async with client.stream("GET", "/api/reservations/events", headers=headers) as response:
        feed = Feed(response)
        assert (await feed.next())["data"]["resumed"] is True
        missed = [await feed.next(), await feed.next()]
        assert [e["data"]["action"] for e in missed] == ["changed", "cancelled"]
        assert [int(e["id"]) for e in missed] == [int(created["id"]) + 1, int(created["id"]) + 2]
    bad = await client.get("/api/reservations/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_last_event_id"


async def test_the_listen_connection_reconnects_by_itself(client, live_server, settings, pool):
    feed_state = live_server.app.state.live_feed
    async with asyncio.timeout(10):
        await feed_state.listening.wait()
    async with client.stream("GET", "/api/reservations/events") as response:
        feed = Feed(response)
        await feed.next()
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1",
            APPLICATION_NAME,
        )
        assert killed >= 1
        made = await book(client, settings)  # possibly while the feed is reconnecting
        created = await feed.next(within_s=15)
        assert created["data"]["after"]["confirmation_number"] == made["confirmation_number"]
    async with asyncio.timeout(10):
        await feed_state.listening.wait()


async def test_the_staff_page_is_served_at_slash_staff(client):
    page = await client.get("/staff", follow_redirects=True)
    assert page.status_code == 200 and page.url.path == "/staff/"
    assert "Reservations · staff" in page.text
    assert "<script>" not in page.text and "style=" not in page.text  # CSP-ready: nothing inline
    for asset in ("/staff/js/main.js", "/staff/staff.css", "/js/format.js"):
        assert (await client.get(asset)).status_code == 200


# --- ETag / If-Match: two staff editing one booking ------------------------------------------


async def test_etag_is_the_same_in_the_list_on_get_and_after_a_write(client, settings):
    made = await book(client, settings)
    listed = (await client.get("/api/reservations", params={"date": day(settings)})).json()
    tag = listed["items"][0]["etag"]
    got = await client.get(f"/api/reservations/{PHONE}")
    assert got.headers["etag"] == tag == etag_of(made)
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 24
    changed = await client.patch(
        f"/api/reservations/{PHONE}", json={"party_size": 2}, headers={"If-Match": tag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] != tag
    assert (await client.get(f"/api/reservations/{PHONE}")).headers["etag"] == changed.headers[
        "etag"
    ]


async def test_a_stale_if_match_is_412_with_the_booking_as_it_is_now(client, settings, pool):
    await book(client, settings)
    first = (await client.get(f"/api/reservations/{PHONE}")).headers["etag"]
    # Someone else saves first (no If-Match: as before this feature).
    other = await client.patch(f"/api/reservations/{PHONE}", json={"name": "Ada King"})
    assert other.status_code == 200
    for method, body in (("PATCH", {"party_size": 6}), ("DELETE", None)):
        stale = await client.request(
            method, f"/api/reservations/{PHONE}", json=body, headers={"If-Match": first}
        )
        assert stale.status_code == 412, stale.text
        error = stale.json()["error"]
        assert error["code"] == "booking_changed"
        assert error["current"]["name"] == "Ada King" and error["current"]["party_size"] == 4
        assert error["current"]["etag"] == other.headers["etag"]
    # Nothing was written by the refused requests: the history has the one change only.
    actions = await pool.fetch(
        "SELECT action FROM reservation_history WHERE phone_number = $1 ORDER BY seq", PHONE
    )
    assert [r["action"] for r in actions] == ["created", "changed"]
    # A weak tag never matches (strong comparison); "*" and the current tag do.
    weak = await client.delete(
        f"/api/reservations/{PHONE}", headers={"If-Match": "W/" + other.headers["etag"]}
    )
    assert weak.status_code == 412
    star = await client.patch(
        f"/api/reservations/{PHONE}", json={"party_size": 3}, headers={"If-Match": "*"}
    )
    assert star.status_code == 200
    listed = f'"nope", {star.headers["etag"]}'
    gone = await client.delete(f"/api/reservations/{PHONE}", headers={"If-Match": listed})
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    # Nothing left to change: 404 as before, whatever the tag.
    again = await client.delete(f"/api/reservations/{PHONE}", headers={"If-Match": "*"})
    assert again.status_code == 404


async def test_two_saves_from_one_version_at_once_exactly_one_wins(client, settings, pool):
    """The tag is compared on the locked row inside the writing transaction: of 20 concurrent
    saves that all read the same version, exactly one is applied."""
    await book(client, settings)
    tag = (await client.get(f"/api/reservations/{PHONE}")).headers["etag"]
    answers = await asyncio.gather(
        *(
            client.patch(
                f"/api/reservations/{PHONE}",
                json={"party_size": 1 + n},
                headers={"If-Match": tag, "X-Source": "staff"},
            )
            for n in range(20)
        )
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [412] * 19
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    for answer in answers:
        if answer.status_code == 412:
            assert answer.json()["error"]["current"]["party_size"] == winner["party_size"]
    changes = await pool.fetchval(
        "SELECT count(*) FROM reservation_history WHERE phone_number = $1 AND action = 'changed'",
        PHONE,
    )
    assert changes == 1


async def test_the_feed_carries_each_sides_etag(client, settings):
    async with client.stream("GET", "/api/reservations/events") as response:
        feed = Feed(response)
        await feed.next()
        await book(client, settings)
        await feed.next()
        changed = await client.patch(f"/api/reservations/{PHONE}", json={"party_size": 5})
        event = await feed.next()
        assert event["data"]["after"]["etag"] == changed.headers["etag"]
        assert event["data"]["before"]["etag"] != changed.headers["etag"]


async def test_confirming_a_request_honours_if_match_too(client, settings):
    rules = {"availability": "rules", "max_party_size": 6}
    assert (await client.put("/api/restaurant", json=rules)).status_code == 200
    asked = await client.post(
        "/api/reservations",
        json={
            "name": "Big Party",
            "phone_number": PHONE,
            "reservation_date": day(settings),
            "reservation_time": "19:30",
            "party_size": 10,
        },
    )
    assert asked.json()["status"] == "requested"
    first = etag_of(asked.json())
    renamed = await client.patch(f"/api/reservations/{PHONE}", json={"name": "Bigger Party"})
    assert renamed.status_code == 200
    confirm = {"status": "confirmed"}
    stale = await client.patch(
        f"/api/reservations/{PHONE}", json=confirm, headers={"If-Match": first}
    )
    assert stale.status_code == 412
    assert stale.json()["error"]["current"]["status"] == "requested"
    now = {"If-Match": renamed.headers["etag"]}
    fresh = await client.patch(f"/api/reservations/{PHONE}", json=confirm, headers=now)
    assert fresh.status_code == 200 and fresh.json()["status"] == "confirmed"
    assert fresh.headers["etag"] == etag_of(fresh.json())
