"""Call records end to end: real calls over /v1/realtime leave one row each; staff read them over
HTTP; the sweeps (interrupted rows, transcript retention) and the day's cost on real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from server import records
from server.records import store
from server.records.recorder import Recorder
from server.records.summary import CallLog, Prices
from tests.conftest import LiveServer, serve_app
from tests.test_relay import BOOK, LOOKUP, Caller, append, pcm_tone

TIMEOUT = 15
FLUSH_S = 0.2


@pytest.fixture(scope="module")
async def server(settings, database, model) -> AsyncIterator[LiveServer]:
    records_settings = settings.model_copy(
        update={
            "openai_base_url": model.url,
            "openai_api_key": None,
            "call_record_flush_s": FLUSH_S,
        }
    )
    async with serve_app(records_settings) as live:
        yield live


@pytest.fixture(scope="module")
async def model():
    import offline_model

    async with offline_model.OfflineModel(pace=0.002) as running:
        yield running


def phone(n: int) -> str:
    return f"83{n:06d}"


@contextlib.asynccontextmanager
async def call(server: LiveServer, *, browser: bool) -> AsyncIterator[Caller]:
    headers = {"Origin": server.url} if browser else {}
    async with websockets.connect(
        f"{server.ws_url}/v1/realtime", additional_headers=headers, max_size=None, max_queue=None
    ) as ws:
        caller = Caller(ws)
        await caller.until("session.updated")
        yield caller


async def row_mentioning(pool: asyncpg.Pool, text: str, status: str = "ended") -> dict[str, Any]:
    """The one calls row whose transcript contains `text`, once it has `status`."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            rows = await pool.fetch(
                "SELECT * FROM calls WHERE transcript::text LIKE '%' || $1 || '%'", text
            )
            assert len(rows) <= 1, rows
            if rows and rows[0]["status"] == status:
                return dict(rows[0])
            await asyncio.sleep(0.05)


def entries(row: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [e for e in row["transcript"] if e["role"] == role]


async def test_a_browser_call_that_books_leaves_one_row_with_outcome_transcript_and_stats(
    server, pool
):
    number = phone(1)
    said = BOOK.format(phone=number)
    async with call(server, browser=True) as caller:
        await caller.say(said)
        code = (await caller.until("reservation.confirmed"))["confirmation_number"]
        spoken = (await caller.until("response.output_audio_transcript.done"))["transcript"]
        stats = await caller.until("session.stats")
    row = await row_mentioning(pool, number)
    assert (row["channel"], row["outcome"], row["confirmation_number"]) == (
        "browser",
        "booked",
        code,
    )
    assert row["end_reason"] == "caller left" and row["caller"] is None
    assert row["ended_at"] >= row["started_at"]
    assert [e["text"] for e in entries(row, "caller")] == [said]
    assert spoken in [e["text"] for e in entries(row, "host")]
    [booking] = entries(row, "tool")
    assert booking["name"] == "make_reservation" and booking["ok"] is True
    assert code in booking["output"] and number in booking["arguments"]
    assert [(t["name"], t["ok"]) for t in row["tool_calls"]] == [("make_reservation", True)]
    assert row["tool_calls"][0]["ms"] > 0
    # token usage is the model's own count (the page saw the same in session.stats)
    assert row["usage"]["input_text"] == stats["usage"]["input_text_tokens"]
    assert row["usage"]["output_audio"] == stats["usage"]["output_audio_tokens"]
    prices = Prices.from_settings(server.settings)
    assert float(row["cost_usd"]) == pytest.approx(prices.cost(row["usage"]), abs=1e-6)
    assert float(row["cost_usd"]) > 0
    assert row["first_audio_ms"] is not None


async def test_sdk_calls_record_look_ups_and_failures(server, pool):
    missing = phone(2)
    async with call(server, browser=False) as caller:
        await caller.say(LOOKUP.format(phone=missing))
        await caller.until("reservation.not_found")
        await caller.until("response.output_audio_transcript.done")
    row = await row_mentioning(pool, missing)
    assert (row["channel"], row["outcome"], row["confirmation_number"]) == (
        "sdk",
        "looked_up",
        None,
    )
    too_many = phone(3)
    async with call(server, browser=False) as caller:
        await caller.say(BOOK.format(phone=too_many).replace("for 4", "for 30"))
        await caller.until("reservation.failed")
        await caller.until("response.output_audio_transcript.done")
    row = await row_mentioning(pool, too_many)
    assert row["outcome"] == "failed"
    assert row["tool_calls"][0]["ok"] is False
    assert '"invalid_arguments"' in entries(row, "tool")[0]["output"]


async def test_reply_latency_of_spoken_turns_is_recorded(server, pool):
    marker = f"latency check {uuid.uuid4().hex[:8]}"
    async with call(server, browser=False) as caller:
        await caller.say(marker)  # a typed turn first: it marks this call's row
        await caller.until("response.done")
        await caller.send(append(pcm_tone(400)))
        await caller.send(append(bytes(24 * 2 * 800)))  # 800 ms of silence: speech stopped
        await caller.until("input_audio_buffer.speech_stopped")
        stats = await caller.until("session.stats")
        while stats["reply_latency_ms"]["count"] < 1:
            stats = await caller.until("session.stats")
    row = await row_mentioning(pool, marker)
    summary = stats["reply_latency_ms"]
    assert row["reply_count"] == summary["count"] == 1
    assert row["reply_latency_p50_ms"] == pytest.approx(summary["p50"], abs=0.1)
    assert row["reply_latency_max_ms"] == pytest.approx(summary["max"], abs=0.1)


async def test_a_live_call_is_written_while_it_runs(server, pool):
    number = phone(4)
    async with call(server, browser=False) as caller:
        await caller.say(LOOKUP.format(phone=number))
        await caller.until("reservation.not_found")
        live = await row_mentioning(pool, number, status="live")
        assert live["ended_at"] is None and live["outcome"] == "looked_up"
        first_seen = live["last_seen"]
        async with asyncio.timeout(TIMEOUT):  # the heartbeat moves on while nothing happens
            while live["last_seen"] == first_seen:
                await asyncio.sleep(0.05)
                live = await row_mentioning(pool, number, status="live")
    await row_mentioning(pool, number, status="ended")


# --- the staff's API ------------------------------------------------------------------------


async def test_staff_list_the_days_calls_page_by_page_and_open_one(server, pool):
    await pool.execute("TRUNCATE calls")
    numbers = [phone(10 + n) for n in range(3)]
    for number in numbers:
        async with call(server, browser=False) as caller:
            await caller.say(LOOKUP.format(phone=number))
            await caller.until("reservation.not_found")
        await row_mentioning(pool, number)
    today = server.settings.today().isoformat()
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"date": today, "limit": "2", **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/calls", params=params)).json()
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 3
        started = [item["started_at"] for item in seen]
        assert started == sorted(started, reverse=True)  # newest first
        assert all(item["outcome"] == "looked_up" and item["duration_s"] >= 0 for item in seen)
        assert "transcript" not in seen[0]  # the list is light; the call has it all
        one = (await http.get(f"/api/calls/{seen[-1]['id']}")).json()
        assert numbers[0] in one["transcript"][0]["text"]
        assert one["tool_calls"][0]["name"] == "lookup_reservation"

        other_day = (await http.get("/api/calls", params={"date": "2001-01-01"})).json()
        assert other_day["items"] == [] and other_day["next_cursor"] is None
        bad = await http.get("/api/calls", params={"cursor": "bm9wZQ", "limit": "0"})
        assert bad.status_code == 422
        assert set(bad.json()["error"]["fields"]) == {"limit"}
        bad = await http.get("/api/calls", params={"cursor": "bm9wZQ"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_cursor")
        missing = await http.get(f"/api/calls/{uuid.uuid4()}")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "call_not_found")
        assert (await http.get("/api/calls/not-a-uuid")).status_code == 404
        # through a proxy, with no STAFF_TOKEN set: not staff
        proxied = {"X-Forwarded-For": "203.0.113.7"}
        for path in ("/api/calls", f"/api/calls/{seen[0]['id']}", "/metrics"):
            refused = await http.get(path, headers=proxied)
            assert (refused.status_code, refused.json()["error"]["code"]) == (
                403,
                "staff_forbidden",
            )


# --- the sweeps and the day's cost ---------------------------------------------------------


def record(started_at: float, **changes: Any) -> dict[str, Any]:
    log = CallLog(
        id=str(uuid.uuid4()), sid="s0", channel="phone", caller="+6598207272", started_at=started_at
    )
    log.transcript.append({"at_s": 0.0, "role": "caller", "text": "hello"})
    row = log.row(Prices(0, 0, 0, 0, 0, 0))
    row.update(changes)
    return row


async def test_retention_purges_old_transcripts_once_whoever_sweeps(pool):
    await pool.execute("TRUNCATE calls")
    now = time.time()
    old = [record(now - 40 * 86400, status="ended", ended_at=now - 40 * 86400 + 60)] * 1
    old.append(record(now - 31 * 86400, status="ended", ended_at=now - 31 * 86400 + 60))
    recent = record(now - 29 * 86400, status="ended", ended_at=now - 29 * 86400 + 60)
    await store.write(pool, [*old, recent], 5)
    # two processes sweeping at once purge each row once
    counts = await asyncio.gather(
        store.purge_transcripts(pool, 30, 5), store.purge_transcripts(pool, 30, 5)
    )
    assert sorted(counts) == [0, 2]
    rows = {str(r["id"]): r for r in await pool.fetch("SELECT * FROM calls")}
    for row in old:
        kept = rows[row["id"]]
        assert kept["transcript"] is None and kept["transcript_purged_at"] is not None
        assert kept["caller"] == "+6598207272"  # the rest of the record stays
    assert rows[recent["id"]]["transcript"] == recent["transcript"]
    # a late flush of a purged call cannot bring its transcript back
    await store.write(pool, [old[0]], 5)
    assert (
        await pool.fetchval("SELECT transcript FROM calls WHERE id = $1", uuid.UUID(old[0]["id"]))
        is None
    )
    # 0 days: no transcript is kept at all
    assert await store.purge_transcripts(pool, 0, 5) == 1
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE transcript IS NOT NULL") == 0


async def test_rows_left_live_by_a_dead_process_are_marked_interrupted(pool):
    await pool.execute("TRUNCATE calls")
    now = time.time()
    dead, alive = record(now - 600), record(now - 5)
    await store.write(pool, [dead, alive], 5)
    await pool.execute(
        "UPDATE calls SET last_seen = now() - interval '10 minutes' WHERE id = $1",
        uuid.UUID(dead["id"]),
    )
    assert await store.mark_interrupted(pool, 60, 5) == 1
    rows = {str(r["id"]): r for r in await pool.fetch("SELECT * FROM calls")}
    gone = rows[dead["id"]]
    assert (gone["status"], gone["end_reason"], gone["ended_at"]) == (
        "interrupted",
        "interrupted",
        gone["last_seen"],
    )
    assert rows[alive["id"]]["status"] == "live"
    assert await store.mark_interrupted(pool, 60, 5) == 0  # idempotent
    # a process that was only cut off writes its row back to live on its next flush
    await store.write(pool, [dead], 5)
    assert (
        await pool.fetchval("SELECT status FROM calls WHERE id = $1", uuid.UUID(dead["id"]))
        == "live"
    )


async def test_cost_of_a_day_counts_the_restaurants_day_only(pool, settings):
    await pool.execute("TRUNCATE calls")
    zone = settings.timezone
    day = dt.date(2026, 3, 8)
    start, end = store.day_bounds(day, zone)
    inside = [start.timestamp(), end.timestamp() - 1]
    outside = [start.timestamp() - 1, end.timestamp()]
    rows = [record(t, cost_usd=1.25) for t in inside] + [record(t, cost_usd=100) for t in outside]
    await store.write(pool, rows, 5)
    assert await store.cost_of_day(pool, day, zone, 5) == pytest.approx(2.5)
    before = await records.cost_today(pool, settings)
    await store.write(pool, [record(time.time(), cost_usd=0.75)], 5)
    assert await records.cost_today(pool, settings) == pytest.approx(before + 0.75)


def fake_call(sid: str, end_reason: str) -> Any:
    """Just what the recorder reads of a call, for tests that drive it without a server."""
    spec = SimpleNamespace(record_id=str(uuid.uuid4()), sid=sid, channel="sdk", caller=None)
    return SimpleNamespace(spec=spec, started_at=time.time(), ended_at=None, end_reason=end_reason)


async def test_a_database_outage_costs_records_not_calls_and_they_are_written_later(
    settings, test_dsn, pool
):
    await pool.execute("TRUNCATE calls")
    errors: list[str] = []
    recorder = Recorder(settings, errors.append)
    broken = await asyncpg.create_pool(test_dsn, min_size=0, max_size=1)
    await broken.close()  # every use raises, as when PostgreSQL is gone
    recorder.pool = broken

    fake = fake_call("s9", "caller left")
    recorder.call_started(fake)
    fake.ended_at = time.time()
    recorder.call_ended(fake)
    assert await recorder.flush() is False
    assert errors == ["call_records"]
    assert fake.spec.record_id in recorder.logs  # kept for the next flush
    recorder.pool = pool  # the database is back
    assert await recorder.flush() is True
    assert recorder.logs == {}
    status = await pool.fetchval(
        "SELECT status FROM calls WHERE id = $1", uuid.UUID(fake.spec.record_id)
    )
    assert status == "ended"


async def test_a_phone_call_is_recorded_with_the_callers_number_in_full(settings, database, pool):
    from tests.twilio_fakes import ScriptedModel, twilio_stream

    caller_number = "+6598207273"
    marker = f"phone check {uuid.uuid4().hex[:8]}"
    async with ScriptedModel().running() as scripted:
        update = {"openai_base_url": scripted.url, "twilio_auth_token": None}
        async with serve_app(settings.model_copy(update=update)) as live:
            async with twilio_stream(live.ws_url) as twilio:
                await twilio.start("CA0100", {"caller": caller_number})
                model = await scripted.session()
                await model.until("response.create")  # the greeting is asked for
                await model.say("response.created", response={"id": "r1"})
                await model.say(
                    "conversation.item.input_audio_transcription.completed",
                    item_id="i1",
                    content_index=0,
                    transcript=marker,
                )
                await model.say(
                    "response.function_call_arguments.done",
                    response_id="r1",
                    call_id="c1",
                    name="lookup_reservation",
                    arguments=f'{{"phone_number": "{caller_number}", "name": "Ada"}}',
                )
                await model.say("response.done", response={"id": "r1", "status": "completed"})
                await model.until("conversation.item.create")  # the tool's output
                await twilio.stop()
                await asyncio.wait_for(model.closed.wait(), TIMEOUT)
            row = await row_mentioning(pool, marker)
    assert (row["channel"], row["caller"], row["end_reason"]) == (
        "phone",
        caller_number,
        "caller left",  # the media stream's "stop" ends the call as a caller who left
    )
    assert row["outcome"] == "looked_up"
    assert [e["role"] for e in row["transcript"]] == ["caller", "tool"]
    assert row["tool_calls"][0]["name"] == "lookup_reservation"


async def test_a_sip_call_is_recorded_with_the_callers_number_and_the_booking(
    settings, database, pool
):
    import offline_model
    from tests.test_sip import CALLER, answered_call, booking, idle, say_and_wait, sip_settings
    from tests.test_sip import until as sip_until

    number = "83777001"
    async with offline_model.OfflineModel(pace=0.002) as model:
        async with serve_app(sip_settings(settings, model, call_record_flush_s=FLUSH_S)) as live:
            call = await answered_call(model, live)
            await say_and_wait(model, call, booking(number), "You're booked")
            model.sip.say(call.call_id, "That's all, thank you. Goodbye!")
            await sip_until(call, lambda c: c.state == "ended")
            await idle(live)
            row = await row_mentioning(pool, number)
    code = await pool.fetchval(
        "SELECT confirmation_number FROM reservations WHERE phone_number = $1", f"+65{number}"
    )
    assert (row["channel"], row["caller"], row["outcome"]) == ("sip", CALLER, "booked")
    assert row["confirmation_number"] == code
    tools = [t["name"] for t in row["tool_calls"]]
    assert tools[0] == "make_reservation" and "end_call" in tools
    assert any(e["role"] == "host" and "booked" in e["text"] for e in row["transcript"])


async def test_a_flush_cancelled_mid_write_leaves_its_rows_for_the_last_flush(
    settings, pool, monkeypatch
):
    """Shutdown cancels the background flush; what it was writing must still reach the table."""
    recorder = Recorder(settings)
    recorder.pool = pool

    fake = fake_call("s10", "server restarting")
    recorder.call_started(fake)
    fake.ended_at = time.time()
    recorder.call_ended(fake)

    writing = asyncio.Event()
    real_write = store.write

    async def stuck_write(*args: Any) -> None:
        writing.set()
        await asyncio.Event().wait()  # the write is under way when the cancel comes

    monkeypatch.setattr(store, "write", stuck_write)
    flush = asyncio.create_task(recorder.flush())
    await writing.wait()
    flush.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flush
    monkeypatch.setattr(store, "write", real_write)
    assert await recorder.flush() is True  # close()'s last flush
    status = await pool.fetchval(
        "SELECT status FROM calls WHERE id = $1", uuid.UUID(fake.spec.record_id)
    )
    assert status == "ended"
