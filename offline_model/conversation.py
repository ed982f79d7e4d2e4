"""One Realtime session as a state machine: client events in, server events out.

No sockets and no clock here (``today`` is injected), so every protocol rule — items echoed but
not answered until ``response.create``, one response at a time, VAD turns, cancellation,
truncation, error events — can be tested by feeding dicts. ``handle`` returns the events to send
now, possibly followed by a ``ResponseRun`` for the I/O edge to stream with pacing, or by a
``Transcribe`` job: the I/O edge runs the recogniser off the event loop and hands the words back
through ``transcribed``, which answers the spoken turn exactly as a typed one (tools included).
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from protocol import realtime as p

from . import dialog, events
from .audio import EnergyVad
from .dialog import Call, Say, Slots
from .events import Event
from .formats import PCM, AudioFormat, format_of
from .intents import parse
from .response import ResponseRun
from .stats import Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcribe:
    """A committed utterance for the recogniser: PCM16 mono at ``rate``."""

    item_id: str
    pcm: bytes
    rate: int


Output = Event | ResponseRun | Transcribe

ITEM_DELETED = "conversation.item.deleted"
ITEM_RETRIEVE = "conversation.item.retrieve"
ITEM_RETRIEVED = "conversation.item.retrieved"
MIN_COMMIT_MS = 100  # the API refuses to commit less than 100 ms of audio
MAX_UTTERANCE_MS = 30_000  # audio kept for the recogniser; older audio of a longer turn is dropped
IDLE_KEEP_MS = 1_000  # kept before speech starts (covers prefix_padding_ms)
TRANSCRIPTION_FAILED = "conversation.item.input_audio_transcription.failed"
NOT_HEARD = "Sorry, I didn't catch that. Could you say it again, or type it?"


class ClientError(Exception):
    """A client mistake, reported as an ``error`` event; the session carries on."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def _missing(param: str) -> ClientError:
    return ClientError(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    )


class Conversation:
    """Session config, conversation items, the dialog's slots and the response in progress."""

    def __init__(
        self,
        *,
        model: str,
        stats: Stats,
        today: Callable[[], date],
        pace: float = 0.025,
        rate_limits: bool = False,
        listen: bool = False,
    ) -> None:
        self.session = events.default_session(model)
        self.conversation_id = events.new_id("conv")
        self.slots = Slots()
        self.active: ResponseRun | None = None
        self.stats = stats
        self._today = today
        self._pace = pace
        self._rate_limits = rate_limits
        self._items: dict[str, dict[str, Any]] = {}
        self._previous: dict[str, str | None] = {}
        self._last_item_id: str | None = None
        self._audio_ms: dict[str, int] = {}  # assistant audio item -> playable length
        self._calls: dict[str, Call] = {}  # call_id -> the call it answers
        self._fresh_text = False
        self._fresh_audio = False
        self._fresh_outputs: list[tuple[Call, str]] = []
        self._has_responded = False
        self._context_text_tokens = 0
        self._context_audio_tokens = 0
        self._buffer_bytes = 0  # uncommitted input audio, in wire bytes
        self._listen = listen  # a recogniser is at hand: committed turns become Transcribe jobs
        self._input: AudioFormat = PCM
        self._pcm = bytearray()  # uncommitted input audio as PCM16, for the recogniser
        self._transcribing: set[str] = set()  # items the recogniser is working on
        self._deferred: dict[str, Any] | None = None  # a response waiting for their words
        self._heard: bool | None = None  # the last spoken turn: understood words, or not
        self._speech_item_id: str | None = None
        self._vad = EnergyVad()
        self._configure_vad()
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Output]]] = {
            p.SESSION_UPDATE: self._session_update,
            p.INPUT_AUDIO_APPEND: self._audio_append,
            p.INPUT_AUDIO_COMMIT: self._audio_commit,
            p.INPUT_AUDIO_CLEAR: self._audio_clear,
            p.ITEM_CREATE: self._item_create,
            p.ITEM_TRUNCATE: self._item_truncate,
            p.ITEM_DELETE: self._item_delete,
            ITEM_RETRIEVE: self._item_retrieve,
            p.RESPONSE_CREATE: self._response_create,
            p.RESPONSE_CANCEL: self._response_cancel,
        }

    # --- entry points ----------------------------------------------------------------------

    def opening(self) -> list[Event]:
        return [events.event(p.SESSION_CREATED, session=copy.deepcopy(self.session))]

    def handle_raw(self, raw: str | bytes) -> list[Output]:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return [p.error_event("invalid_json", f"The server could not parse the event: {exc}")]
        if not isinstance(message, dict):
            return [p.error_event("invalid_json", "An event must be a JSON object.")]
        return self.handle(message)

    def handle(self, message: dict[str, Any]) -> list[Output]:
        """Apply one client event; never raises (problems become ``error`` events)."""
        client_event_id = message.get("event_id")
        if not isinstance(client_event_id, str):
            client_event_id = None
        try:
            kind = message.get("type")
            if not isinstance(kind, str):
                raise _missing("type")
            handler = self._handlers.get(kind)
            if handler is None:
                raise ClientError(
                    "invalid_value",
                    f"Invalid value: '{kind}'. Supported values are: "
                    + ", ".join(f"'{name}'" for name in self._handlers)
                    + ".",
                    "type",
                )
            return handler(message)
        except ClientError as exc:
            return [
                p.error_event(
                    exc.code, exc.message, client_event_id=client_event_id, param=exc.param
                )
            ]
        except Exception:  # a bug here must cost one event, not the session
            log.exception("offline model failed on %s", message.get("type"))
            return [
                p.error_event(
                    "server_error",
                    "The server had an error while processing your request.",
                    client_event_id=client_event_id,
                    error_type="server_error",
                )
            ]

    # --- session ---------------------------------------------------------------------------

    def _session_update(self, message: dict[str, Any]) -> list[Output]:
        patch = message.get("session")
        if not isinstance(patch, dict):
            raise _missing("session")
        if "type" not in patch:
            raise _missing("session.type")
        if patch["type"] != "realtime":
            raise ClientError(
                "invalid_value", "Only 'realtime' sessions are supported.", "session.type"
            )
        modalities = patch.get("output_modalities")
        if modalities is not None and modalities not in (["audio"], ["text"]):
            raise ClientError(
                "invalid_value",
                "output_modalities must be ['audio'] or ['text'].",
                "session.output_modalities",
            )
        if "tools" in patch and not isinstance(patch["tools"], list):
            raise ClientError("invalid_type", "tools must be an array.", "session.tools")
        merged = events.deep_merge(self.session, patch)
        merged["id"], merged["object"] = self.session["id"], self.session["object"]
        merged["type"] = "realtime"
        for way in ("input", "output"):  # a format is replaced whole: pcmu has no "rate"
            given = (patch.get("audio") or {}).get(way) or {}
            if isinstance(given, dict) and "format" in given:
                merged["audio"][way]["format"] = copy.deepcopy(given["format"])
        audio_input = merged.setdefault("audio", {}).setdefault("input", {})
        turn = audio_input.get("turn_detection")
        if isinstance(turn, dict) and turn.get("type") == "server_vad":
            audio_input["turn_detection"] = {**events.DEFAULT_TURN_DETECTION, **turn}
        try:
            formats = [
                format_of(merged["audio"].get(way, {}).get("format")) for way in ("input", "output")
            ]
        except ValueError:
            raise ClientError(
                "invalid_value",
                "Supported audio formats are {'type': 'audio/pcm', 'rate': 24000} and "
                "{'type': 'audio/pcmu'}.",
                "session.audio.format",
            ) from None
        previous, self.session = self.session, merged
        try:
            self._configure_vad()
        except (TypeError, ValueError):
            self.session = previous  # as the API does: a refused update changes nothing
            self._configure_vad()
            raise ClientError(
                "invalid_value",
                "turn_detection threshold and durations must be numbers.",
                "session.audio.input.turn_detection",
            ) from None
        if formats[0] is not self._input:  # a new input format starts a new stream
            self._input = formats[0]
            self._vad.set_rate(self._input.rate)
            self._reset_buffer()
        return [events.event(p.SESSION_UPDATED, session=copy.deepcopy(self.session))]

    def _turn_detection(self) -> dict[str, Any] | None:
        turn = self.session.get("audio", {}).get("input", {}).get("turn_detection")
        return turn if isinstance(turn, dict) else None

    def _configure_vad(self) -> None:
        turn = self._turn_detection() or {}
        self._vad.configure(
            float(turn.get("threshold") or 0.5),
            int(turn.get("prefix_padding_ms") or 300),
            int(turn.get("silence_duration_ms") or 500),
        )

    def _tool_names(self, options: dict[str, Any]) -> set[str]:
        """Function tools the model may call now (a response may override the session's)."""
        tools = options.get("tools", self.session.get("tools")) or []
        choice = options.get("tool_choice", self.session.get("tool_choice", "auto"))
        names = {
            tool["name"]
            for tool in tools
            if isinstance(tool, dict)
            and tool.get("type", "function") == "function"
            and isinstance(tool.get("name"), str)
        }
        if choice == "none":
            return set()
        if isinstance(choice, dict) and isinstance(choice.get("name"), str):
            return names & {choice["name"]}
        return names

    # --- input audio -----------------------------------------------------------------------

    def _audio_append(self, message: dict[str, Any]) -> list[Output]:
        data = message.get("audio")
        if not isinstance(data, str):
            raise _missing("audio")
        try:
            wire = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ClientError("invalid_value", "audio must be base64 encoded.", "audio") from exc
        self.stats.audio_bytes_received += len(wire)
        self._buffer_bytes += len(wire)
        pcm = self._input.to_pcm16(wire)
        self._keep(pcm)
        turn = self._turn_detection()
        if turn is None:
            return []
        out: list[Output] = []
        for vad_event in self._vad.feed(pcm):
            if vad_event.kind == "start":
                out += self._speech_started(vad_event.ms, turn)
            elif self._speech_item_id is not None:
                out += self._speech_stopped(vad_event.ms, turn)
        return out

    def _keep(self, pcm: bytes) -> None:
        """Buffer input for the recogniser, bounded: a second before speech, 30 s of a turn."""
        if not self._listen:
            return
        self._pcm += pcm
        idle = self._turn_detection() is not None and not self._vad.speaking
        keep_ms = IDLE_KEEP_MS if idle else MAX_UTTERANCE_MS
        excess = len(self._pcm) - keep_ms * self._input.rate // 1000 * 2
        if excess > 0:
            del self._pcm[:excess]

    def _reset_buffer(self) -> None:
        self._buffer_bytes = 0
        self._pcm.clear()

    def _speech_started(self, start_ms: int, turn: dict[str, Any]) -> list[Output]:
        self._speech_item_id = events.new_id("item")
        out: list[Output] = [
            events.event(p.SPEECH_STARTED, audio_start_ms=start_ms, item_id=self._speech_item_id)
        ]
        if turn.get("interrupt_response", True):
            self._deferred = None  # the caller goes on talking: answer once, after all of it
            if self.active is not None:
                out += self.active.cancel("turn_detected")
        return out

    def _speech_stopped(self, end_ms: int, turn: dict[str, Any]) -> list[Output]:
        item_id, self._speech_item_id = self._speech_item_id, None
        assert item_id is not None
        out: list[Output] = [events.event(p.SPEECH_STOPPED, audio_end_ms=end_ms, item_id=item_id)]
        out += self._commit(item_id)
        if turn.get("create_response", True) and self.active is None:
            out += self._respond({})
        return out

    def _audio_commit(self, message: dict[str, Any]) -> list[Output]:
        buffered_ms = self._input.ms(self._buffer_bytes)
        if buffered_ms < MIN_COMMIT_MS:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
        item_id = self._speech_item_id or events.new_id("item")
        self._speech_item_id = None
        self._vad.reset()
        return self._commit(item_id)

    def _commit(self, item_id: str) -> list[Output]:
        committed = events.event(
            p.INPUT_AUDIO_COMMITTED, previous_item_id=self._last_item_id, item_id=item_id
        )
        self._context_audio_tokens += self._input.ms(self._buffer_bytes) // 100
        pcm = bytes(self._pcm)
        self._reset_buffer()
        self._fresh_audio = True
        out: list[Output] = [committed, *self._append_item(events.user_audio_item(item_id))]
        if self._listen:
            self._transcribing.add(item_id)
            out.append(Transcribe(item_id, pcm, self._input.rate))
        return out

    def transcribed(self, item_id: str, text: str | None) -> list[Output]:
        """The recogniser's words for ``item_id`` (``None``: it failed); answers if one waits.

        The words are parsed like a typed turn, so a spoken booking fills the same slots and
        leads to the same tool calls. The transcription events are sent only when the session
        asked for transcription (``audio.input.transcription``), as the API does.
        """
        self._transcribing.discard(item_id)
        item = self._items.get(item_id)
        out: list[Output] = []
        if item is not None and text is not None:
            item["content"][0]["transcript"] = text
        if self.session.get("audio", {}).get("input", {}).get("transcription"):
            if text is None:
                out.append(
                    events.event(
                        TRANSCRIPTION_FAILED,
                        item_id=item_id,
                        content_index=0,
                        error={
                            "type": "transcription_error",
                            "code": "recognizer_busy",
                            "message": "The offline recogniser is busy; please repeat.",
                            "param": None,
                        },
                    )
                )
            else:
                out.append(events.transcription_completed(item_id, text))
        if text:
            self.slots.absorb(parse(text, self._today()))
            self._context_text_tokens += events.text_tokens(text)
        self._heard = bool(text)
        if not self._transcribing and self._deferred is not None and self.active is None:
            options, self._deferred = self._deferred, None
            out += self._start_response(options)
        return out

    def _respond(self, options: dict[str, Any]) -> list[Output]:
        """Start a response now, or once the recogniser has said what the caller said."""
        if self._transcribing:
            self._deferred = options
            return []
        return self._start_response(options)

    def _audio_clear(self, message: dict[str, Any]) -> list[Output]:
        self._reset_buffer()
        self._speech_item_id = None
        self._vad.reset()
        return [events.event(p.INPUT_AUDIO_CLEARED)]

    # --- conversation items ----------------------------------------------------------------

    def _item_create(self, message: dict[str, Any]) -> list[Output]:
        item = message.get("item")
        if not isinstance(item, dict):
            raise _missing("item")
        item_id = item.get("id") or events.new_id("item")
        if not isinstance(item_id, str) or item_id in self._items:
            raise ClientError(
                "invalid_value", f"Item id '{item_id}' is invalid or in use.", "item.id"
            )
        kind = item.get("type")
        if kind == "message":
            stored = self._message_item(item_id, item)
        elif kind == "function_call_output":
            stored = self._function_output_item(item_id, item)
        elif kind == "function_call":
            stored = self._function_call_item(item_id, item)
        elif kind is None:
            raise _missing("item.type")
        else:
            raise ClientError("invalid_value", f"Invalid item type: '{kind}'.", "item.type")
        return self._append_item(stored)

    def _message_item(self, item_id: str, item: dict[str, Any]) -> dict[str, Any]:
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            raise ClientError("invalid_value", f"Invalid role: '{role}'.", "item.role")
        content = item.get("content")
        if not isinstance(content, list):
            raise _missing("item.content")
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _missing("item.content[].type")
            text = part.get("text")
            if isinstance(text, str):
                self._context_text_tokens += events.text_tokens(text)
                if role == "user" and part["type"] == "input_text":
                    self.slots.absorb(parse(text, self._today()))
                    self._fresh_text = True
            if role == "user" and part["type"] == "input_audio":
                self._fresh_audio = True
        stored = {"id": item_id, "type": "message", "object": "realtime.item"}
        return {**stored, "status": "completed", "role": role, "content": content}

    def _function_output_item(self, item_id: str, item: dict[str, Any]) -> dict[str, Any]:
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise _missing("item.call_id")
        if not isinstance(output, str):
            raise _missing("item.output")
        call = self._calls.get(call_id)
        if call is None:
            raise ClientError(
                "invalid_value",
                f"No function call with call_id '{call_id}' found in the conversation.",
                "item.call_id",
            )
        self.stats.function_outputs_received += 1
        self._fresh_outputs.append((call, output))
        self._context_text_tokens += events.text_tokens(output)
        return {
            "id": item_id,
            "type": "function_call_output",
            "object": "realtime.item",
            "status": "completed",
            "call_id": call_id,
            "output": output,
        }

    def _function_call_item(self, item_id: str, item: dict[str, Any]) -> dict[str, Any]:
        """A client may replay a call into history; its output is then accepted too."""
        name, call_id = item.get("name"), item.get("call_id")
        if not isinstance(name, str) or not isinstance(call_id, str):
            raise _missing("item.name" if not isinstance(name, str) else "item.call_id")
        arguments = item.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = {}
        self._calls[call_id] = Call(name, parsed if isinstance(parsed, dict) else {})
        return {
            "id": item_id,
            "type": "function_call",
            "object": "realtime.item",
            "status": "completed",
            "name": name,
            "call_id": call_id,
            "arguments": arguments,
        }

    def _append_item(self, item: dict[str, Any]) -> list[Output]:
        previous = self.add_item(item)
        return [
            events.event(p.ITEM_ADDED, previous_item_id=previous, item=item),
            events.event(p.ITEM_DONE, previous_item_id=previous, item=item),
        ]

    def _item_truncate(self, message: dict[str, Any]) -> list[Output]:
        item_id = message.get("item_id")
        content_index = message.get("content_index")
        end_ms = message.get("audio_end_ms")
        for name, value in (("item_id", item_id), ("content_index", content_index)):
            if value is None:
                raise _missing(name)
        if not isinstance(end_ms, int) or isinstance(end_ms, bool):
            raise _missing("audio_end_ms")
        length = self._audio_length_ms(item_id) if isinstance(item_id, str) else None
        if length is None:
            raise ClientError(
                "invalid_value",
                f"Item '{item_id}' is not an assistant audio item in this conversation.",
                "item_id",
            )
        if content_index != 0:
            raise ClientError("invalid_value", "content_index must be 0.", "content_index")
        if not 0 <= end_ms <= length:
            raise ClientError(
                "invalid_value",
                f"Audio content of {length}ms is already shorter than {end_ms}ms.",
                "audio_end_ms",
            )
        assert isinstance(item_id, str)
        self._audio_ms[item_id] = end_ms
        return [
            events.event(p.ITEM_TRUNCATED, item_id=item_id, content_index=0, audio_end_ms=end_ms)
        ]

    def _audio_length_ms(self, item_id: str) -> int | None:
        run = self.active
        if run and run.item and run.item["id"] == item_id and run.modality == "audio":
            return run.audio_format.ms(run.audio_bytes)
        return self._audio_ms.get(item_id)

    def _item_delete(self, message: dict[str, Any]) -> list[Output]:
        item_id = message.get("item_id")
        if not isinstance(item_id, str):
            raise _missing("item_id")
        if item_id not in self._items:
            raise ClientError("invalid_value", f"Item '{item_id}' does not exist.", "item_id")
        del self._items[item_id]
        self._audio_ms.pop(item_id, None)
        return [events.event(ITEM_DELETED, item_id=item_id)]

    def _item_retrieve(self, message: dict[str, Any]) -> list[Output]:
        item_id = message.get("item_id")
        if not isinstance(item_id, str):
            raise _missing("item_id")
        if item_id not in self._items:
            raise ClientError("invalid_value", f"Item '{item_id}' does not exist.", "item_id")
        return [events.event(ITEM_RETRIEVED, item=self._items[item_id])]

    # --- Ledger (called by ResponseRun) ----------------------------------------------------

    def add_item(self, item: dict[str, Any]) -> str | None:
        previous = self._last_item_id
        self._items[item["id"]] = item
        self._previous[item["id"]] = previous
        self._last_item_id = item["id"]
        return previous

    def item_done(self, item: dict[str, Any]) -> str | None:
        run = self.active
        if item["type"] == "function_call" and item["status"] == "completed":
            if run is not None and isinstance(run.plan, Call):
                self._calls[item["call_id"]] = run.plan
        elif item["type"] == "message" and run is not None and run.modality == "audio":
            self._audio_ms[item["id"]] = run.audio_format.ms(run.audio_bytes)
        return self._previous.get(item["id"])

    def response_finished(self, run: ResponseRun) -> None:
        if self.active is run:
            self.active = None

    # --- responses -------------------------------------------------------------------------

    def _response_create(self, message: dict[str, Any]) -> list[Output]:
        if self.active is not None or self._deferred is not None:
            waiting = self.active.id if self.active is not None else "(awaiting transcription)"
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {waiting}. "
                "Wait until the response is finished before creating a new one.",
            )
        options = message.get("response") or {}
        if not isinstance(options, dict):
            raise ClientError("invalid_type", "response must be an object.", "response")
        modalities = options.get("output_modalities")
        if modalities is not None and modalities not in (["audio"], ["text"]):
            raise ClientError(
                "invalid_value",
                "output_modalities must be ['audio'] or ['text'].",
                "response.output_modalities",
            )
        return self._respond(options)

    def _start_response(self, options: dict[str, Any]) -> list[Output]:
        modalities = options.get("output_modalities") or self.session.get("output_modalities")
        audio_output = copy.deepcopy(self.session.get("audio", {}).get("output", {}))
        run = ResponseRun(
            self._plan(options),
            ledger=self,
            stats=self.stats,
            modality="text" if modalities == ["text"] else "audio",
            audio_output=audio_output,
            conversation_id=self.conversation_id,
            input_tokens=(self._context_text_tokens, self._context_audio_tokens),
            pace=self._pace,
            metadata=options.get("metadata"),
            rate_limits=self._rate_limits,
        )
        self.active = run
        return [run.created(), run]

    def _plan(self, options: dict[str, Any]) -> Say | Call:
        """Tool results first, then new words (typed or heard), then unheard audio, else a
        greeting."""
        fresh_outputs, self._fresh_outputs = self._fresh_outputs, []
        fresh_text, fresh_audio = self._fresh_text, self._fresh_audio
        heard, self._heard = self._heard, None
        self._fresh_text = self._fresh_audio = False
        if fresh_audio and heard:
            fresh_text = True
        first, self._has_responded = not self._has_responded, True
        if fresh_outputs:
            return Say(" ".join(dialog.answer(c, out, self.slots) for c, out in fresh_outputs))
        if fresh_text:
            instructions = str(self.session.get("instructions") or "")
            return dialog.decide(self.slots, self._tool_names(options), instructions)
        if fresh_audio:
            return Say(NOT_HEARD if heard is False else dialog.AUDIO_REPLY)
        return Say(dialog.GREETING if first else dialog.ANYTHING_ELSE)

    def _response_cancel(self, message: dict[str, Any]) -> list[Output]:
        run = self.active
        wanted = message.get("response_id")
        if run is None or (wanted is not None and wanted != run.id):
            raise ClientError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        return list(run.cancel("client_cancelled"))
