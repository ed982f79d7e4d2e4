"""One Realtime session as a state machine: client events in, server events out.

No sockets and no clock here (``today`` is injected), so every protocol rule — items echoed but
not answered until ``response.create``, one response at a time, VAD turns, cancellation,
truncation, error events — can be tested by feeding dicts. ``handle`` returns the events to send
now, possibly followed by a ``ResponseRun`` for the I/O edge to stream with pacing, or by a
``Transcribe`` job: the I/O edge runs the recogniser off the event loop and hands the words back
through ``transcribed``, which answers the spoken turn exactly as a typed one (tools included).
The parts live beside it: ``session_config`` (session.update), ``input_audio`` (the buffer,
VAD turns, recogniser jobs), ``items`` (conversation items); this module answers.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import orjson

from protocol import realtime as p

from . import dialog, events
from .answers import answer_of
from .audio import EnergyVad
from .dialog import Call, Say, Slots
from .errors import ClientError, missing
from .events import Event
from .formats import PCM, AudioFormat
from .input_audio import InputAudio, Output, Transcribe
from .intents import Parsed, parse
from .items import ITEM_RETRIEVE
from .response import ResponseRun
from .session_config import merged_session, tool_names
from .stats import Stats

__all__ = [
    "NOT_HEARD",
    "TRANSCRIPTION_FAILED",
    "ClientError",
    "Conversation",
    "Output",
    "Transcribe",
]

log = logging.getLogger(__name__)

TRANSCRIPTION_FAILED = "conversation.item.input_audio_transcription.failed"
GO_ON = "Go on."
SPELL_IT = "Sorry, I didn't get the name. Could you spell it for me?"
NOT_HEARD = "Sorry, I didn't catch that. Could you say it again, or type it?"


class Conversation(InputAudio):
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
        self._listen_for = "general"  # what the host's last question asked for
        self._partial_phone = ""  # digits of a number whose rest is still to come
        self._speech_item_id: str | None = None
        self._vad = EnergyVad()
        self._configure_vad()
        self._handlers: dict[str, Callable[[dict[str, Any]], Sequence[Output]]] = {
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
                raise missing("type")
            handler = self._handlers.get(kind)
            if handler is None:
                raise ClientError(
                    "invalid_value",
                    f"Invalid value: '{kind}'. Supported values are: "
                    + ", ".join(f"'{name}'" for name in self._handlers)
                    + ".",
                    "type",
                )
            return list(handler(message))
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
        merged, formats = merged_session(self.session, message.get("session"))
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

    # --- heard words -------------------------------------------------------------------------

    def transcribed(
        self, item_id: str, text: str | None, heard_as: str = "general"
    ) -> list[Output]:
        """The recogniser's words for ``item_id`` (``None``: it failed); answers if one waits.

        The words are parsed like a typed turn, so a spoken booking fills the same slots and
        leads to the same tool calls; words heard as the answer to the host's question
        (``heard_as``: a name, a spelling) fill its slot even without "my name is". The
        transcription events are sent only when the session asked for transcription
        (``audio.input.transcription``), as the API does.
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
            self.slots.spoken = True
            parsed = self._phone_in_parts(parse(text, self._today()), text)
            self.slots.absorb(answer_of(parsed, text, heard_as, self.slots))
            self._context_text_tokens += events.text_tokens(text)
        self._heard = bool(text)
        if not self._transcribing and self._deferred is not None and self.active is None:
            options, self._deferred = self._deferred, None
            out += self._start_response(options)
        return out

    def _phone_in_parts(self, parsed: Parsed, text: str) -> Parsed:
        """Callers pause between a number's groups, and a pause can end the turn: digits heard
        after "what phone number?" wait for the rest (``GO_ON``) until there are eight."""
        if self._listen_for != "phone" or parsed.phone is not None:
            self._partial_phone = ""
            return parsed
        digits = "".join(ch for ch in text if ch.isdigit())
        if not digits or len(digits) >= 8:
            self._partial_phone = ""
            return parsed
        self._partial_phone += digits
        if len(self._partial_phone) < 8:
            return parsed
        phone, self._partial_phone = self._partial_phone, ""
        return dataclasses.replace(parsed, phone=phone)

    def _respond(self, options: dict[str, Any]) -> list[Output]:
        """Start a response now, or once the recogniser has said what the caller said."""
        if self._transcribing:
            self._deferred = options
            return []
        return self._start_response(options)

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
        plan = self._next_step(options)
        self._listen_for = plan.listen if isinstance(plan, Say) else "general"
        return plan

    def _next_step(self, options: dict[str, Any]) -> Say | Call:
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
        if fresh_text and self._partial_phone:
            return Say(GO_ON, "phone")
        if fresh_text and self._listen_for == "name" and self.slots.name is None:
            return Say(SPELL_IT, "spelling")  # asked for a name, heard none: letters next
        if fresh_text:
            instructions = str(self.session.get("instructions") or "")
            return dialog.decide(self.slots, tool_names(self.session, options), instructions)
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
