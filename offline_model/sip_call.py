"""One simulated SIP call as OpenAI sees it, and its sideband's outbox.

A call owns its conversation, so a sideband that drops and reconnects finds the call as it was.
On the sideband, audio deltas are not sent (the audio went to the caller over RTP); the
`output_audio_buffer.started/stopped` events say when the host's words began and finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection

from protocol import realtime as p

from . import events
from .conversation import Conversation
from .outbox import Outbox

AUDIO_DELTA = b'{"type":"response.output_audio.delta"'


@dataclass
class SipCall:
    """One simulated phone call, as OpenAI sees it."""

    call_id: str
    caller: str
    state: str = "ringing"  # ringing -> accepted -> ended, or ringing -> rejected / ended
    accepted: dict[str, Any] | None = None  # the accept's session settings
    requests: list[str] = field(default_factory=list)  # control-plane verbs, in order
    reject_status: int | None = None
    refer_to: str | None = None
    ended_by: str | None = None  # "hangup", "refer" or "caller"
    conversation: Conversation | None = None
    sidebands: int = 0  # sideband sockets opened so far
    sockets: set[ServerConnection] = field(default_factory=set)
    client_events: list[str] = field(default_factory=list)  # types received on the sideband
    server_events: list[str] = field(default_factory=list)  # types sent on the sideband
    transcripts: list[str] = field(default_factory=list)  # what the host said
    inbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # the caller's turns
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, predicate: Callable[[SipCall], bool]) -> None:
        """Until `predicate(call)` holds (callers bound it with `asyncio.timeout`)."""
        while not predicate(self):
            await self._changed.wait()

    @property
    def quiet(self) -> bool:
        """No response under way: a simulated caller may speak without talking over the host."""
        return self.conversation is not None and self.conversation.active is None


class SidebandOutbox(Outbox):
    """A sideband's outbox: no audio (it went to the caller), playout events instead."""

    def __init__(self, call: SipCall) -> None:
        super().__init__()
        self.call = call
        self.playing: str | None = None  # the response whose audio is playing

    def put(self, frame: bytes | str) -> None:
        raw = frame.encode() if isinstance(frame, str) else frame
        if raw.startswith(AUDIO_DELTA):
            if self.playing is None:
                self.playing = str(orjson.loads(raw).get("response_id", ""))
                self._emit(events.event("output_audio_buffer.started", response_id=self.playing))
            return
        event = orjson.loads(raw)
        kind = str(event.get("type"))
        super().put(frame)
        self.call.server_events.append(kind)
        if kind in (p.OUTPUT_TRANSCRIPT_DONE, "response.output_text.done"):
            self.call.transcripts.append(str(event.get("transcript") or event.get("text") or ""))
        elif kind == p.RESPONSE_DONE and self.playing is not None:
            # The pace of the offline model's audio is the pace it "plays" at: done is heard.
            self._emit(events.event("output_audio_buffer.stopped", response_id=self.playing))
            self.playing = None
        self.call.changed()

    def _emit(self, event: dict[str, Any]) -> None:
        super().put(orjson.dumps(event))
        self.call.server_events.append(event["type"])
