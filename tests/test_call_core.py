"""The call core with in-memory parts: a queue-backed transport and model, no sockets.

What every transport relies on: order on the wire (a tool's output or page event never overtakes
what was decided before it), bounded memory behind a slow reader, a dropped model replaced with
the replay first, and a caller who leaves ending the model session and every task.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close as CloseFrame

from server.call import outbound
from server.call.core import Call, CallSpec
from server.realtime.session import Action, ToClient
from tests.fakes import FakeModel, FakeTransport, ToolReply

TIMEOUT = 10


def event(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def delta(n: int) -> str:
    return event("response.output_audio.delta", response_id="r1", item_id="i1", delta=f"AAA{n}")


def function_call(call_id: str = "c1") -> list[str]:
    args = '{"phone_number": "81234567"}'
    return [
        event("response.created", response={"id": "r1"}),
        event(
            "response.function_call_arguments.done",
            response_id="r1",
            call_id=call_id,
            name="lookup_reservation",
            arguments=args,
        ),
    ]


def make_call(settings, transport: FakeTransport, models: list[FakeModel], tool=None) -> Call:
    remaining = list(models)

    async def connect() -> FakeModel:
        return remaining.pop(0)

    spec = CallSpec(
        sid="t1",
        channel="test",
        session_update={"type": "session.update", "session": {"type": "realtime"}},
        connect_model=connect,
    )
    return Call(spec, transport, settings=settings, run_tool=tool or ToolReply().run)


async def test_a_page_event_never_overtakes_audio_decided_before_it(settings):
    """A tool finishes while an audio delta waits for the caller: its page event goes after it.

    The model's reader is blocked writing delta 0 to a caller who is not reading; the tool's
    output goes to the model at once (another socket), its page event queues behind delta 0, and
    the deltas the model sends after it follow the page event.
    """
    transport = FakeTransport()
    model = FakeModel()
    tool = ToolReply(page_event={"type": "reservation.found", "event_id": "e1"}, hold=True)
    call = make_call(settings, transport, [model], tool.run)
    running = asyncio.create_task(call.run())
    for text in function_call():
        model.feed(text)
    await asyncio.wait_for(tool.started.wait(), TIMEOUT)
    transport.close_gate()
    for n in range(5):
        model.feed(delta(n))
    await asyncio.wait_for(transport.wait_blocked(), TIMEOUT)  # delta 0 is being written
    tool.release.set()
    await asyncio.wait_for(model.wait_sent("conversation.item.create"), TIMEOUT)
    transport.open_gate()
    model.feed(event("response.done", response={"id": "r1", "status": "completed"}))
    await asyncio.wait_for(transport.wait_for("session.stats"), TIMEOUT)
    kinds = transport.kinds()
    audio = "response.output_audio.delta"
    assert kinds[kinds.index(audio) :] == [
        audio,
        "reservation.found",
        audio,
        audio,
        audio,
        audio,
        "response.done",
        "session.stats",
    ]
    model_kinds = model.kinds()  # the tool's output, then one response.create after response.done
    assert model_kinds.count("response.create") == 1
    assert model_kinds.index("conversation.item.create") < model_kinds.index("response.create")
    await transport.leave()
    await asyncio.wait_for(running, TIMEOUT)


async def test_a_slow_reader_holds_the_model_with_bounded_memory_then_catches_up(settings):
    transport = FakeTransport(gate=True)
    model = FakeModel()
    call = make_call(settings, transport, [model])
    running = asyncio.create_task(call.run())
    frames = [delta(n) for n in range(outbound.HIGH * 5)]
    for text in frames:
        model.feed(text)
    await asyncio.wait_for(transport.wait_blocked(), TIMEOUT)
    await asyncio.sleep(0.05)  # room for the core to misbehave: it must not read on
    assert model.unread > 0
    assert len(call.to_caller) <= outbound.HIGH + 1
    transport.open_gate()
    await asyncio.wait_for(
        transport.wait_count("response.output_audio.delta", len(frames)), TIMEOUT
    )
    got = [t for t in transport.sent if t.startswith('{"type":"response.output_audio.delta"')]
    assert got == frames
    await transport.leave()
    await asyncio.wait_for(running, TIMEOUT)


async def test_a_dropped_model_is_replaced_and_the_replay_goes_first(settings):
    transport = FakeTransport()
    first, second = FakeModel(), FakeModel()
    call = make_call(settings, transport, [first, second])
    running = asyncio.create_task(call.run())
    transport.feed(
        event(
            "conversation.item.create",
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        )
    )
    await asyncio.wait_for(first.wait_sent("conversation.item.create"), TIMEOUT)
    first.drop(1006)
    await asyncio.wait_for(transport.wait_for("session.reconnected"), TIMEOUT)
    transport.feed(event("input_audio_buffer.append", audio="AAAA"))
    await asyncio.wait_for(second.wait_sent("input_audio_buffer.append"), TIMEOUT)
    assert second.kinds() == [
        "session.update",  # the server's settings, then the conversation, then the caller's audio
        "conversation.item.create",
        "input_audio_buffer.append",
    ]
    assert first.closed
    await transport.leave()
    await asyncio.wait_for(running, TIMEOUT)
    assert second.closed


async def test_the_caller_leaving_ends_the_model_and_every_task(settings):
    transport = FakeTransport()
    model = FakeModel()
    call = make_call(settings, transport, [model])
    before = len(asyncio.all_tasks())
    running = asyncio.create_task(call.run())
    await asyncio.wait_for(model.wait_sent("session.update"), TIMEOUT)
    await transport.leave()
    await asyncio.wait_for(running, TIMEOUT)
    assert model.closed and transport.closed_with is not None
    assert len(asyncio.all_tasks()) <= before


async def test_a_model_that_closes_for_good_ends_the_call_with_an_error(settings):
    transport = FakeTransport()
    model = FakeModel()
    call = make_call(settings, transport, [model])
    running = asyncio.create_task(call.run())
    await asyncio.wait_for(model.wait_sent("session.update"), TIMEOUT)
    model.drop(1008)  # policy violation: retrying cannot help
    await asyncio.wait_for(running, TIMEOUT)
    code, _, error = transport.closed_with or (0, "", None)
    assert code == 1011 and error is not None
    assert error["error"]["code"] == "model_disconnected"


@pytest.mark.parametrize("actions_per_step", [1, 3])
async def test_outbound_keeps_decision_order_across_producers(actions_per_step):
    """Two producers and a slow socket: the wire shows each decision's messages in order."""
    wire: list[str] = []
    gate = asyncio.Event()

    async def send(text: str) -> None:
        await gate.wait()
        wire.append(text)

    out = outbound.Outbound(send)

    async def produce(name: str, steps: int) -> None:
        for step in range(steps):
            for part in range(actions_per_step):
                out.push(f"{name}{step}.{part}")
            await out.flush()

    decided = asyncio.gather(produce("a", 30), produce("b", 30))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(decided, TIMEOUT)
    for name in "ab":
        mine = [t for t in wire if t.startswith(name)]
        assert mine == [f"{name}{s}.{p}" for s in range(30) for p in range(actions_per_step)]
    assert len(wire) == 60 * actions_per_step


async def test_outbound_failure_reaches_every_waiting_producer():
    async def send(text: str) -> None:
        await asyncio.sleep(0)
        raise ConnectionClosed(CloseFrame(1006, ""), None)

    out = outbound.Outbound(send, high=2, low=1)
    for n in range(5):
        out.push(str(n))
    with pytest.raises(ConnectionClosed):
        await out.flush()
    with pytest.raises(ConnectionClosed):
        await out.send("after")


def test_fake_transport_satisfies_the_protocol():
    from server.call.core import Transport

    transport: Transport = FakeTransport()
    actions: list[Action] = transport.deliver("x")
    assert actions == [ToClient("x")]


class Recorder:
    """A `CallObserver` that keeps what it is told."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.ended: list[tuple[str, str]] = []

    def call_started(self, call: Call) -> None:
        self.started.append(call.spec.sid)

    def call_noted(self, call: Call, note: Any) -> None:
        self.notes.append((note.kind, note.data))

    def call_ended(self, call: Call) -> None:
        self.ended.append((call.spec.sid, call.end_reason))


async def test_observers_hear_turns_tools_latency_and_the_end(settings):
    transport = FakeTransport()
    model = FakeModel()
    tool = ToolReply(page_event={"type": "reservation.found", "event_id": "e1"})
    recorder = Recorder()
    call = make_call(settings, transport, [model], tool.run)
    call.observers = (recorder,)
    running = asyncio.create_task(call.run())
    transport.feed(
        event(
            "conversation.item.create",
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        )
    )
    model.feed(event("input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="u1"))
    model.feed(delta(0))
    model.feed(event("response.output_audio_transcript.done", transcript="Hello, Luma Bistro."))
    for text in function_call():
        model.feed(text)
    usage = {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}
    model.feed(event("response.done", response={"id": "r1", "status": "completed", "usage": usage}))
    await asyncio.wait_for(model.wait_sent("response.create"), TIMEOUT)
    await transport.leave()
    await asyncio.wait_for(running, TIMEOUT)
    kinds = [kind for kind, _ in recorder.notes]
    assert recorder.started == ["t1"] and recorder.ended == [("t1", "caller left")]
    assert ("turn", {"role": "caller", "text": "hi"}) in recorder.notes
    assert ("turn", {"role": "host", "text": "Hello, Luma Bistro."}) in recorder.notes
    assert kinds.count("reply_latency") == 1 and kinds.count("first_audio") == 1
    assert ("usage", usage) in recorder.notes
    [tool_note] = [data for kind, data in recorder.notes if kind == "tool"]
    assert tool_note["name"] == "lookup_reservation" and tool_note["ok"] is True
    assert tool_note["page_event"]["type"] == "reservation.found"
