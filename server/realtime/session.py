"""The relay's decisions, with no I/O: an event goes in, a list of actions comes out.

`RelaySession` sees every frame in both directions and decides what to forward, what to refuse,
which tool call to run and when the model should speak again. The call core (`server.call`) only
carries the actions out, so every branch -- the allow-list (`client_events`), the tool-call loop
(`tool_loop`), the figures (`stats`), silence -- is testable with plain strings (the sans-I/O
style of h11 and websockets).

Hot path: audio frames are recognised by their type (`peek`) and forwarded as the same string,
never decoded from base64 nor re-serialised. Only events the relay acts on are parsed.
"""

from __future__ import annotations

from typing import Any

import orjson

from protocol import realtime as p
from server.realtime.actions import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    Action,
    Close,
    Note,
    RunTool,
    ToClient,
    ToModel,
)
from server.realtime.client_events import Refused, check_client_event
from server.realtime.peek import event_type, peek_type
from server.realtime.silence import GOODBYE, PROMPT, Silence
from server.realtime.stats import KEEP, EventRate, Stats
from server.realtime.tool_loop import ToolLoop, _Response, message_item, response_id_of

__all__ = [  # re-exported: the core, the transports and the tests import them from here
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "CLOSE_TOO_BIG",
    "CLOSE_TRY_AGAIN",
    "Action",
    "Close",
    "Note",
    "RelaySession",
    "RunTool",
    "ToClient",
    "ToModel",
    "peek_type",
]


# Model events the relay acts on; every other event is forwarded without being parsed.
_ACTED_ON = frozenset(
    {
        p.SPEECH_STOPPED,
        p.RESPONSE_CREATED,
        p.RESPONSE_DONE,
        p.FUNCTION_ARGS_DONE,
        p.ERROR,
        p.OUTPUT_TRANSCRIPT_DONE,
        p.OUTPUT_TEXT_DONE,
        p.INPUT_TRANSCRIPTION_COMPLETED,
    }
)
_PLAYOUT = frozenset({p.PLAYOUT_STARTED, p.PLAYOUT_STOPPED, p.PLAYOUT_CLEARED})
_SPEAKERS = {"user": "caller", "assistant": "host"}  # history roles as a transcript names them
HISTORY_ITEMS = 40  # conversation kept for replay to a fresh model session
HISTORY_TEXT_CHARS = 2000
RATE_LIMIT_CLOSE_AFTER = 500  # refused events before a flooding client is disconnected
_DELTA_KEY = '"delta":"'


class RelaySession(ToolLoop):
    """One call's protocol state. Feed it frames and tool results; carry out what it returns."""

    def __init__(
        self,
        *,
        max_frame_chars: int,
        session_update: dict[str, Any],
        max_events_per_s: float | None = None,
        silence: Silence | None = None,
    ):
        self.max_frame_chars = max_frame_chars
        self.silence = silence  # None: the caller's silence is not the host's business (SDK)
        self.session_update = session_update
        self.stats = Stats()
        self.history: list[tuple[str, str]] = []  # (role, text): replayed after a reconnect
        self._client_session_update: dict[str, Any] | None = None
        self._rate = EventRate(max_events_per_s, 2 * max_events_per_s) if max_events_per_s else None
        self._rate_refused = 0
        self._rate_warned_at = -1.0
        ToolLoop.__init__(self)
        self._speech_stopped_at: float | None = None
        self._oversized = 0
        self._started_at: float | None = None
        self._first_audio = False
        self.notes: list[Note] = []  # reported since the caller last took them (`take_notes`)

    def take_notes(self) -> list[Note]:
        notes, self.notes = self.notes, []
        return notes

    # -- start --------------------------------------------------------------------------------

    def start(self, now: float | None = None) -> list[Action]:
        """The server's own session.update, sent before any client event is forwarded."""
        self._started_at = now
        return [ToModel(orjson.dumps(self.session_update).decode())]

    # -- client -> model ----------------------------------------------------------------------

    def client_text(self, text: str, now: float | None = None) -> list[Action]:
        if self._rate is not None and now is not None and not self._rate.allow(now):
            return self._rate_limited(now)
        if len(text) > self.max_frame_chars:
            return self._oversize(len(text))
        if peek_type(text) == p.INPUT_AUDIO_APPEND:  # the client's own text goes on as sent
            self.stats.audio_frames_in += 1
            return [ToModel(text)]
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self._refuse(Refused("invalid_json", "The event is not valid JSON."), None)
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        if not isinstance(client_event_id, str):
            client_event_id = None
        try:
            forward = check_client_event(event)
        except Refused as refusal:
            return self._refuse(refusal, client_event_id)
        kind = event["type"]
        if kind == p.INPUT_AUDIO_APPEND:
            self.stats.audio_frames_in += 1
        elif kind == p.ITEM_CREATE:
            if self.silence is not None:
                self.silence.caller_active()
            for part in event["item"]["content"]:
                if part.get("type") == "input_text" and isinstance(part.get("text"), str):
                    self._remember("user", part["text"])
        elif forward is not None:  # a sanitised session.update: replayed after a reconnect
            self._client_session_update = forward
        # What was checked is what is sent: re-serialising the parsed event means a frame with
        # duplicate keys cannot mean one thing to us and another to the model. Only the audio
        # fast path above forwards the client's own text.
        return [ToModel(orjson.dumps(forward if forward is not None else event).decode())]

    def _rate_limited(self, now: float) -> list[Action]:
        self._rate_refused += 1
        self.stats.refused += 1
        self.notes.append(Note("refused", {"code": "rate_limited"}))
        if self._rate_refused >= RATE_LIMIT_CLOSE_AFTER:
            return [Close(CLOSE_POLICY, "too many events")]
        if now - self._rate_warned_at < 1.0:
            return []  # one error a second is enough to say it
        self._rate_warned_at = now
        event = p.error_event(
            "rate_limited",
            "Too many events; some were dropped. Send audio in 20-40 ms chunks.",
        )
        return [ToClient(orjson.dumps(event).decode())]

    def _remember(self, role: str, text: str) -> None:
        text = text.strip()
        if text:
            self.history.append((role, text[:HISTORY_TEXT_CHARS]))
            del self.history[:-HISTORY_ITEMS]
            if role in _SPEAKERS:
                self.notes.append(Note("turn", {"role": _SPEAKERS[role], "text": text}))

    def client_binary(self) -> list[Action]:
        refusal = Refused("binary_not_supported", "Send events as JSON text frames.")
        return self._refuse(refusal, None)

    def _oversize(self, size: int) -> list[Action]:
        self._oversized += 1
        refusal = Refused(
            "frame_too_large",
            f"Event of {size} characters is over the {self.max_frame_chars} limit; "
            "send audio in smaller chunks.",
        )
        actions = self._refuse(refusal, None)
        if self._oversized >= 3:
            actions.append(Close(CLOSE_TOO_BIG, "repeated oversized frames"))
        return actions

    def _refuse(self, refusal: Refused, client_event_id: str | None) -> list[Action]:
        self.stats.refused += 1
        self.notes.append(Note("refused", {"code": refusal.code}))
        event = p.error_event(
            refusal.code, refusal.message, client_event_id=client_event_id, param=refusal.param
        )
        return [ToClient(orjson.dumps(event).decode())]

    # -- model -> client ----------------------------------------------------------------------

    def model_text(self, text: str, now: float) -> list[Action]:
        """Forward every model event; act on the few that matter. An event the prefix does not
        decide is parsed, so the same event is treated the same whatever its key order or
        spacing."""
        kind = peek_type(text)
        event: dict[str, Any] | None = None
        if kind is None or kind in _ACTED_ON:
            kind, event = event_type(text) if kind is None else (kind, _parsed(text))
            if event is None:
                return [ToClient(text)]  # not ours to judge; the client sees what was sent
        if kind == p.OUTPUT_AUDIO_DELTA:
            self._audio_out(now)
            if self.silence is not None:
                self.silence.audio(now, _delta_chars(text, event))
            return [ToClient(text)]
        if self.silence is not None:
            if kind == p.SPEECH_STARTED:
                self.silence.caller_active()
            elif kind in _PLAYOUT:
                self.silence.playout(now, playing=kind == p.PLAYOUT_STARTED)
        if event is None:
            return [ToClient(text)]
        return [ToClient(text), *self._model_event(event, now)]

    def _record_latency(self, now: float) -> None:
        assert self._speech_stopped_at is not None
        latency = round((now - self._speech_stopped_at) * 1000, 1)
        self.stats.reply_latencies_ms.append(latency)
        del self.stats.reply_latencies_ms[:-KEEP]
        self._speech_stopped_at = None
        self.notes.append(Note("reply_latency", {"ms": latency}))

    def _audio_out(self, now: float) -> None:
        """Counted for every assistant audio delta (the hot path: keep it small)."""
        self.stats.audio_frames_out += 1
        if self._speech_stopped_at is not None:
            self._record_latency(now)
        if not self._first_audio:
            self._first_audio = True
            if self._started_at is not None:
                ms = round((now - self._started_at) * 1000, 1)
                self.notes.append(Note("first_audio", {"ms": ms}))

    def _model_event(self, event: dict[str, Any], now: float) -> list[Action]:
        kind = event.get("type")
        if kind == p.SPEECH_STOPPED:
            self._speech_stopped_at = now
        elif kind == p.RESPONSE_CREATED:
            if self.silence is not None:
                self.silence.response_started()
            response_id = response_id_of(event)
            self._create_in_flight = False
            self._active_response = response_id
            self._responses.setdefault(response_id, _Response())
        elif kind == p.FUNCTION_ARGS_DONE:
            return self._function_call(event, now)
        elif kind == p.RESPONSE_DONE:
            if self.silence is not None:
                self.silence.response_done(now)
            return self._response_done(event)
        elif kind == p.ERROR:
            return self._model_error(event)
        elif kind == p.OUTPUT_TRANSCRIPT_DONE:
            self._remember_text("assistant", event.get("transcript"))
        elif kind == p.OUTPUT_TEXT_DONE:
            self._remember_text("assistant", event.get("text"))
        elif kind == p.INPUT_TRANSCRIPTION_COMPLETED:
            self._remember_text("user", event.get("transcript"))
        return []

    def _remember_text(self, role: str, text: Any) -> None:
        if isinstance(text, str):
            self._remember(role, text)

    def replay(self, reason: str, conversation: bool = True) -> list[Action]:
        """Bring a fresh model session up to date: settings, then the conversation as text.

        `conversation` False: the session kept it (a SIP sideband reconnects to the same one).

        Calls still running belong to the old session: their results will be told to the new
        one as a system message (it would not know their call_id), followed by a response.
        """
        self._responses.clear()
        self._active_response = None
        self._create_in_flight = False
        self._create_event_id = None
        self._speech_stopped_at = None
        self._orphaned |= self._seen_calls - self._outputs_sent
        self.notes.append(Note("model_reconnected", {"reason": reason}))
        actions: list[Action] = [ToModel(orjson.dumps(self.session_update).decode())]
        if self._client_session_update is not None:
            actions.append(ToModel(orjson.dumps(self._client_session_update).decode()))
        replayed = self.history if conversation else []
        for role, text in replayed:
            actions.append(ToModel(orjson.dumps(message_item(role, text)).decode()))
        event = p.custom_event(p.SESSION_RECONNECTED, reason=reason, replayed_items=len(replayed))
        actions.append(ToClient(orjson.dumps(event).decode()))
        return actions

    def tick(self, now: float) -> list[Action]:
        """Time passing: the host asks after a silent caller, then says goodbye and hangs up."""
        if self.silence is None:
            return []
        due = self.silence.due(now, busy=not self.quiet)
        if due is None:
            return []
        if due == "hang up":
            return [Close(CLOSE_NORMAL, "caller silent")]
        self._create_in_flight = True
        self._create_event_id = p.event_id("relay")
        create = {"type": p.RESPONSE_CREATE, "event_id": self._create_event_id}
        item = message_item("system", PROMPT if due == "prompt" else GOODBYE)
        actions: list[Action] = [
            ToModel(orjson.dumps(item).decode()),
            ToModel(orjson.dumps(create).decode()),
        ]
        if due == "goodbye":
            ending = p.custom_event(p.CALL_END_REQUESTED, reason="caller silent")
            actions.append(ToClient(orjson.dumps(ending).decode()))
        return actions

    def stats_event(self) -> dict[str, Any]:
        return p.custom_event(p.SESSION_STATS, **self.stats.as_event_fields())


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _delta_chars(text: str, event: dict[str, Any] | None) -> int:
    """Base64 characters of an audio delta. Unparsed (the prefix decided, so `text` holds no
    backslash and no string can hold a quote) the value after `"delta":"` runs to the next quote;
    written otherwise, the event is parsed."""
    if event is None:
        at = text.find(_DELTA_KEY)
        if at >= 0:
            start = at + len(_DELTA_KEY)
            return text.find('"', start) - start
        event = _parsed(text)
    delta = event.get("delta") if event is not None else None
    return len(delta) if isinstance(delta, str) else 0
