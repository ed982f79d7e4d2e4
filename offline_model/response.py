"""One model response as a paced stream of GA events that can be cut short at any point.

A response is a generator of events interleaved with pauses (a ``float`` of seconds). The I/O
edge sends events and sleeps on pauses; the state machine may cancel the response between any
two steps (``response.cancel``, barge-in), and ``cancel`` then closes exactly what was opened so
far, in the API's order, so clients always see balanced ``added``/``done`` pairs and a final
``response.done``. Whatever the generator has yielded has been sent: nothing is half-emitted.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any, Protocol

from protocol import realtime as p

from . import audio, events
from .dialog import Call, Say
from .events import Event
from .formats import PCMU, AudioFormat, format_of
from .stats import Stats

PACE_MS = 100  # ``pace`` is the pause per 100 ms of audio (and per text or arguments delta)
# Audio per output_audio.delta: 100 ms of PCM16 24 kHz (4,800 bytes), or 20 ms of μ-law
# (160 bytes), the frame a phone line carries.
CHUNK_MS = {PCMU: 20}
DEFAULT_CHUNK_MS = 100
ARGUMENT_PIECES = 3  # function-call arguments arrive in (at least two) deltas

Step = Event | float


class Ledger(Protocol):
    """What a response needs from its conversation (implemented by ``Conversation``)."""

    def add_item(self, item: dict[str, Any]) -> str | None:
        """Append an item; returns the ``previous_item_id``."""
        ...

    def item_done(self, item: dict[str, Any]) -> str | None:
        """Record the finished item; returns its ``previous_item_id``."""
        ...

    def response_finished(self, run: ResponseRun) -> None: ...


class ResponseRun:
    """The state of one response: what has been emitted, so it can be completed or cancelled."""

    def __init__(
        self,
        plan: Say | Call,
        *,
        ledger: Ledger,
        stats: Stats,
        modality: str,
        audio_output: dict[str, Any],
        conversation_id: str,
        input_tokens: tuple[int, int],
        pace: float,
        metadata: dict[str, Any] | None = None,
        rate_limits: bool = False,
    ) -> None:
        self.id = events.new_id("resp")
        self.plan = plan
        self.status = "in_progress"
        self.item: dict[str, Any] | None = None  # the open output item, if any
        self.output: list[dict[str, Any]] = []
        self.audio_bytes = 0  # audio sent so far: the limit for conversation.item.truncate
        self.modality = modality
        self.audio_format: AudioFormat = format_of(audio_output.get("format"))
        self._ledger = ledger
        self._stats = stats
        self._audio_output = audio_output
        self._conversation_id = conversation_id
        self._input_tokens = input_tokens
        self._pace = float(pace)
        self._metadata = metadata
        self._rate_limits = rate_limits
        self._said = ""  # transcript / text emitted so far
        self._arguments = ""

    @property
    def finished(self) -> bool:
        return self.status != "in_progress"

    def created(self) -> Event:
        """``response.created``: sent at once by the state machine, before any streaming."""
        return events.event(p.RESPONSE_CREATED, response=self._response(output=[]))

    def steps(self) -> Iterator[Step]:
        """The rest of the response; stops as soon as the response is finished elsewhere."""
        body = self._call() if isinstance(self.plan, Call) else self._speak(self.plan.text)
        # Check before advancing: the body mutates state (bytes sent, transcript) as it goes,
        # and none of that may happen after a cancel has already reported the totals.
        while not self.finished:
            step = next(body, None)
            if step is None:
                yield from self._finish("completed", None)
                return
            yield step

    def cancel(self, reason: str) -> list[Event]:
        """Close what is open and end with ``response.done`` (status ``cancelled``)."""
        if self.finished:
            return []
        closing = list(self._close_item("incomplete"))
        return closing + list(self._finish("cancelled", {"type": "cancelled", "reason": reason}))

    # --- bodies ----------------------------------------------------------------------------

    def _open(self, item: dict[str, Any]) -> Iterator[Event]:
        self.item = item
        yield self._event(p.OUTPUT_ITEM_ADDED, item=dict(item))
        yield events.event(p.ITEM_ADDED, previous_item_id=self._ledger.add_item(item), item=item)

    def _speak(self, text: str) -> Iterator[Step]:
        item = events.assistant_item(events.new_id("item"))
        yield from self._open(item)
        in_audio = self.modality == "audio"
        part = {"type": "audio", "transcript": ""} if in_audio else {"type": "text", "text": ""}
        yield self._part_event(p.CONTENT_PART_ADDED, part=part)
        if in_audio:
            yield from self._stream_audio(text)
        else:
            yield from self._stream_text(text)
        yield from self._close_item("completed")

    def _stream_audio(self, text: str) -> Iterator[Step]:
        wire = self.audio_format
        data = wire.from_pcm16(audio.synthesize(text, wire.rate))
        chunk_ms = CHUNK_MS.get(wire, DEFAULT_CHUNK_MS)
        size = chunk_ms * wire.bytes_per_ms
        pause = self._pace * chunk_ms / PACE_MS
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        words = _pieces(text, len(chunks))
        for index, chunk in enumerate(chunks):
            if words[index]:
                self._said += words[index]
                yield self._part_event(p.OUTPUT_TRANSCRIPT_DELTA, delta=words[index])
            self.audio_bytes += len(chunk)
            self._stats.audio_bytes_sent += len(chunk)
            yield self._part_event(p.OUTPUT_AUDIO_DELTA, delta=base64.b64encode(chunk).decode())
            yield pause

    def _stream_text(self, text: str) -> Iterator[Step]:
        for piece in _pieces(text, max(1, len(text.split()) // 3)):
            self._said += piece
            yield self._part_event(p.OUTPUT_TEXT_DELTA, delta=piece)
            yield self._pace

    def _call(self) -> Iterator[Step]:
        assert isinstance(self.plan, Call)
        call_id = events.new_id("call")
        item = events.function_call_item(events.new_id("item"), self.plan.name, call_id)
        yield from self._open(item)
        arguments = json.dumps(self.plan.arguments)
        size = -(-len(arguments) // ARGUMENT_PIECES)
        for start in range(0, len(arguments), size):
            delta = arguments[start : start + size]
            self._arguments += delta
            yield self._event(
                p.FUNCTION_ARGS_DELTA, item_id=item["id"], call_id=call_id, delta=delta
            )
            yield self._pace
        self._stats.function_calls += 1
        yield self._event(
            p.FUNCTION_ARGS_DONE,
            item_id=item["id"],
            call_id=call_id,
            name=self.plan.name,
            arguments=arguments,
        )
        yield from self._close_item("completed")

    # --- closing ---------------------------------------------------------------------------

    def _close_item(self, status: str) -> Iterator[Event]:
        item = self.item
        if item is None:
            return
        if item["type"] == "message":
            if self.modality == "audio":
                yield self._part_event(p.OUTPUT_AUDIO_DONE)
                yield self._part_event(p.OUTPUT_TRANSCRIPT_DONE, transcript=self._said)
                content = {"type": "output_audio", "transcript": self._said}
                part = {"type": "audio", "transcript": self._said}
            else:
                yield self._part_event(p.OUTPUT_TEXT_DONE, text=self._said)
                content = {"type": "output_text", "text": self._said}
                part = {"type": "text", "text": self._said}
            yield self._part_event(p.CONTENT_PART_DONE, part=part)
            item["content"] = [content]
        else:
            item["arguments"] = self._arguments
        self.item = None
        item["status"] = status
        self.output.append(item)
        yield self._event(p.OUTPUT_ITEM_DONE, item=item)
        yield events.event(p.ITEM_DONE, previous_item_id=self._ledger.item_done(item), item=item)

    def _finish(self, status: str, details: dict[str, Any] | None) -> Iterator[Event]:
        self.status = status
        usage = self._usage()
        self._ledger.response_finished(self)
        response = self._response(output=self.output, status_details=details, usage=usage)
        yield events.event(p.RESPONSE_DONE, response=response)
        if self._rate_limits:
            yield events.rate_limits(usage["total_tokens"])

    # --- shapes ----------------------------------------------------------------------------

    def _response(self, *, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return events.response_object(
            self.id,
            status=self.status,
            output=output,
            modalities=[self.modality],
            audio_output=self._audio_output,
            conversation_id=self._conversation_id,
            metadata=self._metadata,
            **extra,
        )

    def _event(self, event_type: str, **fields: Any) -> Event:
        return events.event(event_type, response_id=self.id, output_index=0, **fields)

    def _part_event(self, event_type: str, **fields: Any) -> Event:
        """An event about content part 0 of the open message item."""
        assert self.item is not None
        return events.event(
            event_type,
            response_id=self.id,
            item_id=self.item["id"],
            output_index=0,
            content_index=0,
            **fields,
        )

    def _usage(self) -> dict[str, Any]:
        said_tokens = events.text_tokens(self._said + self._arguments)
        return events.usage(
            input_text=self._input_tokens[0],
            input_audio=self._input_tokens[1],
            output_text=said_tokens,
            output_audio=self.audio_format.ms(self.audio_bytes) // 50,
        )


def _pieces(text: str, count: int) -> list[str]:
    """Split ``text`` into ``count`` consecutive pieces on word boundaries (some may be empty)."""
    tokens = re.findall(r"\S+\s*", text)
    count = max(1, count)
    return ["".join(tokens[i * len(tokens) // count : (i + 1) * len(tokens) // count])
            for i in range(count)]  # fmt: skip
