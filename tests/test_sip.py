"""Phone calls over SIP end to end: signed webhooks, the offline model's SIP control plane and
sideband on loopback, the call core on the sideband, real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

import offline_model
from demo.sip import run_sip_demo
from offline_model.sip import SipCall, incoming_event, new_secret, post_webhook, sign
from tests.conftest import LiveServer, serve_app

TIMEOUT = 10
CALLER = "+6591234567"
TRANSFER_TO = "+6561234567"
SECRET = new_secret()


def phone(n: int) -> str:
    return f"82{os.getpid() % 100:02d}{n:04d}"


def booking(number: str) -> str:
    return (
        "I'd like to book a table for 2 tomorrow at 7pm. "
        f"My name is Ada Lovelace and my phone is {number}."
    )


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[offline_model.OfflineModel]:
    async with offline_model.OfflineModel(pace=0.002) as running:
        yield running


def sip_settings(settings: Any, model: offline_model.OfflineModel, **more: Any) -> Any:
    return settings.model_copy(
        update={
            "openai_base_url": model.sip.url,  # the SIP control plane (accept, hangup, ...)
            "openai_websocket_base_url": model.url,  # the model's sockets (the sideband)
            "openai_api_key": None,
            "openai_webhook_secret": SecretStr(SECRET),
            "transfer_number": TRANSFER_TO,
            **more,
        }
    )


@pytest.fixture(scope="module")
async def server(settings, database, model) -> AsyncIterator[LiveServer]:
    async with serve_app(sip_settings(settings, model)) as live:
        yield live


async def until(call: SipCall, predicate: Callable[[SipCall], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        await call.wait(predicate)


def greeted(call: SipCall) -> bool:
    return call.sidebands >= 1 and "response.done" in call.server_events and call.quiet


async def answered_call(
    model: offline_model.OfflineModel, server: LiveServer, caller: str = CALLER
) -> SipCall:
    call, status = await model.sip.place_call(f"{server.url}/openai/webhook", SECRET, caller=caller)
    assert status == 200
    await until(call, greeted)
    return call


async def idle(server: LiveServer) -> None:
    """Every call of the server has ended and its tasks are done."""
    async with asyncio.timeout(TIMEOUT):
        await server.app.state.switchboard.idle()
        sip_calls = server.app.state.sip_calls
        await asyncio.gather(*sip_calls.tasks)


async def say_and_wait(
    model: offline_model.OfflineModel, call: SipCall, text: str, heard: str
) -> None:
    model.sip.say(call.call_id, text)
    await until(call, lambda c: any(heard in t for t in c.transcripts) and c.quiet)


# --- the webhook ---------------------------------------------------------------------------------


async def post(server: LiveServer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        return await client.post(f"{server.url}/openai/webhook", content=body, headers=headers)


def signed_headers(
    body: bytes, *, webhook_id: str = "wh_test", timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, webhook_id, ts, body),
    }


def nothing_done(server: LiveServer, call: SipCall) -> None:
    """No task started, no line taken, no request reached OpenAI's control plane."""
    assert not server.app.state.sip_calls.tasks
    assert server.app.state.switchboard.active == 0
    assert call.requests == [] and call.sidebands == 0


@pytest.mark.parametrize(
    ("case", "status"), [("unsigned", 400), ("tampered", 401), ("stale", 401), ("forged", 401)]
)
async def test_a_bad_webhook_is_refused_and_nothing_is_done(server, model, case, status):
    call = model.sip.new_call()
    body = orjson.dumps(incoming_event(call.call_id, CALLER, "+6560000000"))
    webhook_id = f"wh_{case}_{call.call_id}"
    if case == "unsigned":
        headers = {"content-type": "application/json"}
    elif case == "tampered":
        headers = signed_headers(body, webhook_id=webhook_id)
        body = body.replace(CALLER.encode(), b"+6599999999")
    elif case == "stale":
        headers = signed_headers(body, webhook_id=webhook_id, timestamp=int(time.time()) - 600)
    else:  # signed with another secret
        headers = signed_headers(body, webhook_id=webhook_id)
        headers["webhook-signature"] = (await _signature_with(new_secret(), webhook_id, body))[0]
    response = await post(server, body, headers)
    assert response.status_code == status
    assert "error" in response.json()
    nothing_done(server, call)


async def _signature_with(secret: str, webhook_id: str, body: bytes) -> tuple[str, int]:
    ts = int(time.time())
    return sign(secret, webhook_id, ts, body), ts


async def test_an_oversized_webhook_is_refused_unread(server):
    response = await post(server, b"{" + b" " * (300 * 1024) + b"}", signed_headers(b"{}"))
    assert response.status_code == 413
    assert not server.app.state.sip_calls.tasks


async def test_the_webhook_is_off_without_a_secret(live_server):
    body = orjson.dumps(incoming_event("rtc_x", CALLER, "+6560000000"))
    response = await post(live_server, body, signed_headers(body))
    assert response.status_code == 404


async def test_a_repeated_delivery_is_acted_on_once_across_processes(
    server, model, settings, database
):
    call = model.sip.new_call()
    body = orjson.dumps(incoming_event(call.call_id, CALLER, "+6560000000"))
    webhook_id = f"wh_once_{call.call_id}"
    first = await post(server, body, signed_headers(body, webhook_id=webhook_id))
    assert first.status_code == 200 and first.json() == {"ok": True}
    await until(call, greeted)
    again = await post(server, body, signed_headers(body, webhook_id=webhook_id))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    # Another process (another server on the same database) gets the repeat: dropped too.
    async with serve_app(sip_settings(settings, model)) as other:
        elsewhere = await post(other, body, signed_headers(body, webhook_id=webhook_id))
        assert elsewhere.status_code == 200 and elsewhere.json()["duplicate"] is True
        assert not other.app.state.sip_calls.tasks
    await model.sip.hang_up(call.call_id)
    await idle(server)
    assert call.requests == ["accept"]


# --- answering ------------------------------------------------------------------------------------


async def test_accept_carries_the_instructions_with_the_callers_number_and_the_tools(server, model):
    call = await answered_call(model, server, caller="+6598765432")
    accepted = call.accepted
    assert accepted is not None
    assert "+6598765432" in accepted["instructions"]
    assert "This is a phone call" in accepted["instructions"]
    assert {t["name"] for t in accepted["tools"]} == {
        "check_availability",
        "make_reservation",
        "change_reservation",
        "cancel_reservation",
        "lookup_reservation",
        "end_call",
        "transfer_call",
    }
    assert accepted["audio"]["output"]["voice"] == "marin"
    assert accepted["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert "format" not in accepted["audio"]["input"]  # the SIP side's codec stands
    assert call.transcripts[0].startswith("Hello!")  # the host spoke first
    await model.sip.hang_up(call.call_id)
    await idle(server)


async def test_a_booking_on_the_sideband_is_in_the_book_and_end_call_hangs_up(server, model, pool):
    number = phone(1)
    call = await answered_call(model, server)
    await say_and_wait(model, call, booking(number), "You're booked")
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        found = await client.get(f"{server.url}/api/reservations/{number}")
    assert found.status_code == 200
    assert found.json()["name"] == "Ada Lovelace"

    model.sip.say(call.call_id, "That's all, thank you. Goodbye!")
    await until(call, lambda c: c.state == "ended")
    assert call.ended_by == "hangup"
    # The hang-up came only after the goodbye had played out.
    assert call.transcripts[-1] == "Thank you for calling. Goodbye!"
    assert call.server_events[-1] == "output_audio_buffer.stopped"
    await idle(server)
    assert call.requests == ["accept", "hangup"]


async def test_transfer_refers_the_call_to_the_number(server, model):
    call = await answered_call(model, server)
    model.sip.say(call.call_id, "Can I speak to a person please?")
    await until(call, lambda c: c.state == "ended")
    assert call.ended_by == "refer"
    assert call.refer_to == f"tel:{TRANSFER_TO}"
    assert "transferring you" in call.transcripts[-1]
    await idle(server)
    assert call.requests == ["accept", "refer"]  # transferred: nothing left to hang up


async def test_several_calls_at_once(server, model, pool):
    calls = await asyncio.gather(*(answered_call(model, server) for _ in range(3)))
    assert server.app.state.switchboard.active == 3
    numbers = [phone(10 + i) for i in range(3)]
    await asyncio.gather(
        *(
            say_and_wait(model, call, booking(number), "You're booked")
            for call, number in zip(calls, numbers, strict=True)
        )
    )
    for call in calls:
        model.sip.say(call.call_id, "Goodbye!")
    await asyncio.gather(*(until(call, lambda c: c.state == "ended") for call in calls))
    await idle(server)
    assert all(call.requests == ["accept", "hangup"] for call in calls)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        for number in numbers:
            assert (await client.get(f"{server.url}/api/reservations/{number}")).status_code == 200


async def test_at_capacity_the_call_is_rejected_busy(settings, database, model):
    async with serve_app(sip_settings(settings, model, max_sessions=1)) as full:
        first = await answered_call(model, full)
        second, status = await model.sip.place_call(f"{full.url}/openai/webhook", SECRET)
        assert status == 200
        await until(second, lambda c: c.state == "rejected")
        assert second.reject_status == 486
        assert second.requests == ["reject"] and second.sidebands == 0
        await model.sip.hang_up(first.call_id)
        await idle(full)


async def test_a_caller_gone_before_accept_is_dropped_without_retries(server, model):
    call = model.sip.new_call()
    await model.sip.hang_up(call.call_id)  # hung up while it rang
    body = orjson.dumps(incoming_event(call.call_id, CALLER, "+6560000000"))
    status, _ = await post_webhook(f"{server.url}/openai/webhook", body, secret=SECRET)
    assert status == 200
    await idle(server)
    assert call.requests == ["accept"]  # answered 404: logged, not retried
    assert call.sidebands == 0


# --- faults and the call's end ------------------------------------------------------------------


async def test_a_sideband_drop_reconnects_to_the_same_call_without_replaying_it(
    server, model, pool
):
    call = await answered_call(model, server)
    await model.sip.drop(call.call_id)
    await until(call, lambda c: c.sidebands == 2 and c.client_events.count("session.update") == 2)
    # The session kept the conversation: the settings are resent, no item is replayed.
    assert "conversation.item.create" not in call.client_events
    number = phone(20)
    await say_and_wait(model, call, booking(number), "You're booked")  # the call goes on
    await model.sip.hang_up(call.call_id)
    await idle(server)
    assert call.requests == ["accept"]


async def test_the_caller_hanging_up_ends_the_call_and_its_tasks(server, model):
    call = await answered_call(model, server)
    assert server.app.state.switchboard.active == 1
    await model.sip.hang_up(call.call_id)
    await idle(server)  # sideband closed, reconnect refused (404): the call is over
    assert server.app.state.switchboard.active == 0
    assert call.requests == ["accept"]  # the caller left: nothing to hang up


async def test_shutdown_hangs_up_live_calls(settings, database, model):
    async with contextlib.AsyncExitStack() as stack:
        live = await stack.enter_async_context(serve_app(sip_settings(settings, model)))
        call = await answered_call(model, live)
    assert call.state == "ended" and call.ended_by == "hangup"
    assert call.requests == ["accept", "hangup"]


async def test_the_sip_demo_books_and_hangs_up(settings, pool):
    lines: list[str] = []
    status = await run_sip_demo(
        "Grace Hopper", "+65 9000 0123", TIMEOUT, lines.append, None, settings
    )
    assert status == 0, lines
    assert lines[-1].startswith("demo passed: booked over SIP")
    assert any(line.startswith("  host:   Hello!") for line in lines)  # the host spoke first
    assert "call ended by hangup; control plane saw accept, hangup" in lines
