"""Two server processes, one phone, changes, cancellations and bookings all at once.

Whatever order PostgreSQL applies them in, the end must be one consistent state, and the
history must tell exactly how it got there: each entry starts from the state the previous one
left (no lost update), every 2xx answer is one history entry, and the live feed of one process
carries every entry of both, in order, once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import orjson

from tests.servers import server_process
from tests.test_staff_api import Feed

PHONE = "+6598201111"
PATH = "/api/reservations/%2B6598201111"


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def replay(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Walk the history from nothing; fails on any entry that does not follow from the last."""
    current: dict[str, Any] | None = None
    for entry in entries:
        if entry["action"] == "created":
            assert current is None and entry["before"] is None, entry
        else:
            assert entry["action"] in ("changed", "cancelled"), entry
            assert entry["before"] == current, ("an update was lost", entry)
        current = entry["after"] if entry["action"] != "cancelled" else None
        if entry["action"] == "cancelled":
            assert entry["after"]["status"] == "cancelled"
    return current


async def test_change_cancel_and_book_at_once_from_two_processes(test_dsn, pool, settings):
    day = (settings.today() + dt.timedelta(days=5)).isoformat()
    body = {"name": "Race Test", "phone_number": PHONE, "reservation_date": day}
    async with (
        server_process(test_dsn) as first,
        server_process(test_dsn) as second,
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as http,
    ):
        urls = [first.url, second.url]
        made = await http.post(
            f"{urls[0]}/api/reservations",
            json={**body, "reservation_time": "18:00", "party_size": 2},
        )
        assert made.status_code == 201
        async with http.stream("GET", f"{urls[0]}/api/reservations/events") as stream:
            feed = Feed(stream)
            start = int((await feed.next())["id"])
            requests = []
            for i in range(60):
                url = urls[i % 2]
                kind = ("party", "time", "cancel", "book")[i % 4] if i % 6 else "party"
                # Each change carries its own mark, so every 200 is a real change (a change to
                # what the booking already says is answered 200 with no history entry).
                mark = {"other_info": {"request": i}}
                if kind == "party":
                    change = {"party_size": 1 + i % 20, **mark}
                    requests.append(("PATCH", f"{url}{PATH}", change))
                elif kind == "time":
                    change = {"reservation_time": f"{i % 24:02d}:{i:02d}", **mark}
                    requests.append(("PATCH", f"{url}{PATH}", change))
                elif kind == "cancel":
                    requests.append(("DELETE", f"{url}{PATH}", None))
                else:
                    book = {**body, "reservation_time": "21:00", "party_size": 1 + i % 20}
                    requests.append(("POST", f"{url}/api/reservations", book))
            answers = await asyncio.gather(
                *(http.request(method, url, json=payload) for method, url, payload in requests)
            )
            history = (await http.get(f"{urls[1]}{PATH}/history")).json()["items"]
            newest = history[-1]["id"]
            pushed = [int(start)]
            while pushed[-1] < newest:
                event = await feed.next(within_s=10)
                pushed.append(int(event["id"]))
        assert first.errors() == [] and second.errors() == []

    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 201, 404, 409}, statuses
    # One consistent end, and a history that tells it.
    assert history[0]["action"] == "created"
    final = replay(history)
    row = await pool.fetchrow(
        "SELECT confirmation_number, party_size FROM reservations"
        " WHERE phone_number = $1 AND status = 'confirmed'",
        PHONE,
    )
    if final is None:
        assert row is None
    else:
        assert (row["confirmation_number"], row["party_size"]) == (
            final["confirmation_number"],
            final["party_size"],
        )
    # Every success is exactly one entry, with the same state; refusals left none.
    written = {
        ("PATCH", 200): "changed",
        ("DELETE", 200): "cancelled",
        ("POST", 201): "created",
    }
    told = sorted(
        (written[(method, r.status_code)], canonical(r.json()))
        for (method, _, _), r in zip(requests, answers, strict=True)
        if (method, r.status_code) in written
    )
    recorded = sorted((e["action"], canonical(e["after"])) for e in history[1:])
    assert told == recorded
    assert {"changed", "cancelled", "created"} <= {a for a, _ in told}  # it was a real race
    # The live feed of one process carried every entry of both processes, in order, once.
    ids = [e["id"] for e in history if e["id"] > start]
    assert pushed[1:] == ids
