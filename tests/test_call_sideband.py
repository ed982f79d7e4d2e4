"""The core's one seam for SIP: a sideband's model session outlives its socket.

After a drop the new socket gets the server's settings but none of the conversation (the
session at OpenAI still holds it; a replay would say everything twice).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from server.call.core import Call, CallSpec
from tests.fakes import FakeModel, FakeTransport, ToolReply

TIMEOUT = 10


def event(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def user_turn(text: str) -> str:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return event("conversation.item.create", item=item)


async def dropped_and_replaced(settings, sideband: bool) -> list[str]:
    """What the second model session receives after the first drops mid-call."""
    transport = FakeTransport()
    first, second = FakeModel(), FakeModel()
    models = [first, second]

    async def connect() -> FakeModel:
        return models.pop(0)

    spec = CallSpec(
        sid="t1",
        channel="test",
        session_update={"type": "session.update", "session": {"type": "realtime"}},
        connect_model=connect,
        sideband=sideband,
    )
    call = Call(spec, transport, settings=settings, run_tool=ToolReply().run)
    running = asyncio.create_task(call.run())
    transport.feed(user_turn("hi"))
    await asyncio.wait_for(first.wait_sent("conversation.item.create"), TIMEOUT)
    first.drop(1006)
    await asyncio.wait_for(transport.wait_for("session.reconnected"), TIMEOUT)
    transport.feed(event("response.create"))
    await asyncio.wait_for(second.wait_sent("response.create"), TIMEOUT)
    await transport.leave()
    await asyncio.wait_for(running, TIMEOUT)
    assert first.closed and second.closed
    return second.kinds()


async def test_a_sideband_reconnect_sends_the_settings_but_replays_nothing(settings):
    assert await dropped_and_replaced(settings, sideband=True) == [
        "session.update",
        "response.create",
    ]


async def test_an_ordinary_reconnect_still_replays_the_conversation(settings):
    assert await dropped_and_replaced(settings, sideband=False) == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]
