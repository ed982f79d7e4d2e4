"""/metrics: counters move by exactly what scripted calls did; the observer's arithmetic alone."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

import offline_model
from server.realtime.session import Note
from server.records.metrics import Metrics
from tests.conftest import LiveServer, serve_app
from tests.test_relay import BOOK, LOOKUP, Caller, append, pcm_tone

TIMEOUT = 15


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


@pytest.fixture(scope="module")
async def server(settings, database) -> AsyncIterator[LiveServer]:
    async with offline_model.OfflineModel(pace=0.002) as model:
        update = {"openai_base_url": model.url, "openai_api_key": None, "call_record_flush_s": 0.2}
        async with serve_app(settings.model_copy(update=update)) as live:
            yield live


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@contextlib.asynccontextmanager
async def call(server: LiveServer) -> AsyncIterator[Caller]:
    async with websockets.connect(
        f"{server.ws_url}/v1/realtime", max_size=None, max_queue=None
    ) as ws:
        caller = Caller(ws)
        await caller.until("session.updated")
        yield caller


async def final_stats(caller: Caller) -> dict[str, Any]:
    """The session.stats after the host's last spoken reply."""
    await caller.until("response.output_audio_transcript.done")
    return await caller.until("session.stats")


async def test_counters_move_by_what_the_calls_did(server, pool):
    number = f"84{uuid.uuid4().int % 10**6:06d}"
    usages: list[dict[str, int]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as http:
        before = await scrape(http)
        async with call(server) as caller:  # books
            await caller.say(BOOK.format(phone=number))
            await caller.until("reservation.confirmed")
            during = await scrape(http)
            usages.append((await final_stats(caller))["usage"])
        async with call(server) as caller:  # looks up, refused once, speaks once
            await caller.send({"type": "session.delete", "event_id": "x"})
            await caller.until("error")
            await caller.say(LOOKUP.format(phone=f"85{number[2:]}"))
            await caller.until("reservation.not_found")
            usages.append((await final_stats(caller))["usage"])
            await caller.send(append(pcm_tone(400)))
            await caller.send(append(bytes(24 * 2 * 800)))
            stats = await caller.until("session.stats")
            while stats["reply_latency_ms"]["count"] < 1:
                stats = await caller.until("session.stats")
            usages[-1] = stats["usage"]
        async with call(server) as caller:  # fails: the phone already holds a booking
            await caller.say(BOOK.format(phone=number).replace("7pm", "8pm"))
            await caller.until("reservation.failed")
            usages.append((await final_stats(caller))["usage"])
        async with asyncio.timeout(TIMEOUT):  # the calls' ends are counted once they are over
            while True:
                after = await scrape(http)
                ended = sample(after, "voice_calls_ended_total") - sample(
                    before, "voice_calls_ended_total"
                )
                if ended >= 3:
                    break
                await asyncio.sleep(0.05)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    active = "voice_calls_active"
    assert sample(during, active, channel="sdk") - sample(before, active, channel="sdk") == 1
    assert sample(after, active, channel="sdk") == sample(before, active, channel="sdk")
    ended_name = "voice_calls_ended_total"
    common = {"channel": "sdk", "end_reason": "caller left"}
    assert delta(ended_name) == 3
    for outcome in ("booked", "looked_up", "failed"):
        assert delta(ended_name, outcome=outcome, **common) == 1
    assert delta("voice_reservations_total", action="book", outcome="confirmed") == 1
    assert delta("voice_reservations_total", action="book", outcome="failed") == 1
    assert delta("voice_reservations_total", action="lookup", outcome="not_found") == 1
    tools = "voice_tool_duration_seconds_count"
    assert delta(tools, tool="make_reservation", outcome="ok") == 1
    assert delta(tools, tool="make_reservation", outcome="reservation_exists") == 1
    assert delta(tools, tool="lookup_reservation", outcome="ok") == 1
    assert delta("voice_refused_client_events_total", code="event_not_allowed") == 1
    assert delta("voice_reply_latency_seconds_count", channel="sdk") == 1
    assert delta("voice_first_audio_seconds_count", channel="sdk") == 3
    tokens = "voice_model_tokens_total"
    for direction in ("input", "output"):
        for modality in ("text", "audio"):
            expected = sum(u.get(f"{direction}_{modality}_tokens", 0) for u in usages)
            assert delta(tokens, direction=direction, modality=modality) == expected
    assert delta("voice_model_cost_usd_total", channel="sdk") > 0


def test_the_observer_counts_reconnects_refusals_cached_tokens_and_database_errors(settings):
    metrics = Metrics(settings)

    class Spec:
        record_id, channel = "r1", "phone"

    class FakeCall:
        spec, end_reason = Spec(), "caller hung up"

    call: Any = FakeCall()
    metrics.call_started(call)
    metrics.call_noted(call, Note("model_reconnected", {"reason": "model_disconnected"}))
    metrics.call_noted(call, Note("refused", {"code": "rate_limited"}))
    metrics.call_noted(call, Note("refused", {"code": "rate_limited"}))
    usage = {
        "input_token_details": {
            "text_tokens": 10,
            "audio_tokens": 20,
            "cached_tokens": 5,
            "cached_tokens_details": {"text_tokens": 1, "audio_tokens": 4},
        },
        "output_token_details": {"text_tokens": 3, "audio_tokens": 7},
    }
    metrics.call_noted(call, Note("usage", usage))
    output = '{"ok":false,"error":"database_unavailable"}'
    tool = {"name": "make_reservation", "ok": False, "ms": 40.0, "output": output}
    failed = {"type": "reservation.failed", "reason": "database_unavailable"}
    metrics.call_noted(call, Note("tool", {**tool, "page_event": failed}))
    metrics.database_error("call_records")
    metrics.call_ended(call)
    value = metrics.registry.get_sample_value
    assert value("voice_model_reconnects_total", {"reason": "model_disconnected"}) == 1
    assert value("voice_refused_client_events_total", {"code": "rate_limited"}) == 2
    assert value("voice_model_tokens_total", {"direction": "input", "modality": "audio"}) == 20
    assert value("voice_model_tokens_total", {"direction": "output", "modality": "text"}) == 3
    assert value("voice_model_cached_tokens_total", {"modality": "audio"}) == 4
    expected = (9 * 4 + 1 * 0.4 + 16 * 32 + 4 * 0.4 + 3 * 16 + 7 * 64) / 1e6
    assert value("voice_model_cost_usd_total", {"channel": "phone"}) == pytest.approx(expected)
    assert value("voice_database_errors_total", {"operation": "tool"}) == 1
    assert value("voice_database_errors_total", {"operation": "call_records"}) == 1
    labels = {"tool": "make_reservation", "outcome": "database_unavailable"}
    assert value("voice_tool_duration_seconds_sum", labels) == pytest.approx(0.04)
    ended = {"channel": "phone", "end_reason": "caller hung up", "outcome": "failed"}
    assert value("voice_calls_ended_total", ended) == 1
    assert value("voice_calls_active", {"channel": "phone"}) == 0
