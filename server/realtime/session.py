"""The relay's decisions, with no I/O: an event goes in, a list of actions comes out.

`RelaySession` sees every frame in both directions and decides what to forward, what to refuse,
which tool call to run and when the model should speak again. The socket code in `relay.py` only
carries the actions out, so every branch here -- the allow-list, the tool-call loop, barge-in,
the figures -- is testable with plain strings (the sans-I/O style of h11 and websockets).

Hot path: audio frames are recognised by a prefix check and forwarded as the same string, never
decoded from base64 nor re-serialised. Only events the relay acts on are parsed.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import orjson

from protocol import realtime as p
from server.realtime.peek import event_type, peek_type
from server.realtime.silence import GOODBYE, PROMPT, Silence

__all__ = ["peek_type"]  # re-exported: transports and tests read types through it

# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToModel:
    text: str


@dataclass(frozen=True, slots=True)
class ToClient:
    text: str


@dataclass(frozen=True, slots=True)
class RunTool:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = ToModel | ToClient | RunTool | Close


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth reporting (records, metrics), not sent anywhere.

    Kinds: `turn` (role "caller" or "host", text), `tool` (name, arguments, output, ok, ms,
    page_event), `reply_latency` (ms), `first_audio` (ms since the call started), `usage` (a
    response's token usage), `refused` (code), `model_reconnected` (reason).
    """

    kind: str
    data: dict[str, Any]


# --- the small parts of the protocol that are ours to police ---------------------------------

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013

VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
)
TURN_DETECTION_KEYS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "eagerness",
        "idle_timeout_ms",
    }
)
RESPONSE_CREATE_KEYS = frozenset({"metadata", "output_modalities"})
USER_CONTENT_TYPES = frozenset({"input_text", "input_audio"})
USAGE_KEYS = ("total_tokens", "input_tokens", "output_tokens")
DETAIL_KEYS = ("text_tokens", "audio_tokens", "cached_tokens")

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
_KEEP = 50  # figures kept per session for session.stats
_DELTA_KEY = '"delta":"'


class Refused(Exception):
    """A client event we will not forward; becomes an `error` event naming its event_id."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


# --- state ------------------------------------------------------------------------------------


@dataclass
class _Response:
    call_ids: list[str] = field(default_factory=list)
    done: bool = False
    status: str = ""
    followed_up: bool = False


@dataclass
class Stats:
    reply_latencies_ms: list[float] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    responses: int = 0
    audio_frames_in: int = 0
    audio_frames_out: int = 0
    refused: int = 0

    def add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        for key in USAGE_KEYS:
            self._add(key, usage.get(key))
        for side in ("input", "output"):
            details = usage.get(f"{side}_token_details")
            if isinstance(details, dict):
                for key in DETAIL_KEYS:
                    self._add(f"{side}_{key}", details.get(key))

    def _add(self, key: str, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            self.usage[key] = self.usage.get(key, 0) + value

    def as_event_fields(self) -> dict[str, Any]:
        latencies = self.reply_latencies_ms
        summary = (
            {
                "count": len(latencies),
                "last": latencies[-1],
                "p50": round(statistics.median(latencies), 1),
                "max": max(latencies),
            }
            if latencies
            else {"count": 0}
        )
        return {
            "reply_latency_ms": summary,
            "reply_latencies_ms": latencies[-_KEEP:],
            "tool_calls": self.tool_calls[-_KEEP:],
            "usage": dict(self.usage),
            "responses": self.responses,
            "audio_frames_in": self.audio_frames_in,
            "audio_frames_out": self.audio_frames_out,
            "refused_events": self.refused,
        }


class EventRate:
    """A token bucket: `rate` events a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.last: float | None = None

    def allow(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RelaySession:
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
        self._orphaned: set[str] = set()  # calls whose model session is gone
        self._orphan_follow_up = False
        self._responses: dict[str, _Response] = {}
        self._calls: dict[str, tuple[str, str, str]] = {}  # call_id -> (response_id, name, args)
        self._seen_calls: set[str] = set()
        self._outputs_sent: set[str] = set()
        self._active_response: str | None = None
        self._create_in_flight = False
        self._create_event_id: str | None = None  # our response.create awaiting response.created
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
            forward = self._check_client_event(event)
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

    def _check_client_event(self, event: Any) -> dict[str, Any] | None:
        """Raise `Refused`, or return a sanitised replacement, or None to forward as sent."""
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise Refused("invalid_event", "An event must be a JSON object with a string 'type'.")
        kind = event["type"]
        if kind not in p.CLIENT_ALLOWED:
            allowed = ", ".join(sorted(p.CLIENT_ALLOWED))
            raise Refused(
                "event_not_allowed",
                f"'{kind[:80]}' is not accepted from clients (allowed: {allowed}).",
            )
        if kind == p.ITEM_CREATE:
            _check_user_item(event.get("item"))
        elif kind == p.SESSION_UPDATE:
            return _sanitise_session_update(event)
        elif kind == p.RESPONSE_CREATE:
            response = event.get("response")
            if response is not None:
                if not isinstance(response, dict):
                    raise Refused("invalid_event", "'response' must be an object.", "response")
                extra = sorted(set(response) - RESPONSE_CREATE_KEYS)
                if extra:
                    raise Refused(
                        "response_field_not_allowed",
                        f"response.{extra[0]} is set by the server only.",
                        f"response.{extra[0]}",
                    )
        return None

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
        del self.stats.reply_latencies_ms[:-_KEEP]
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
            response_id = _response_id(event)
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

    def _model_error(self, event: dict[str, Any]) -> list[Action]:
        """The model refused our own response.create: no response is coming for it."""
        error = event.get("error")
        if (
            self._create_in_flight
            and isinstance(error, dict)
            and error.get("event_id") == self._create_event_id
        ):
            self._create_in_flight = False
            self._create_event_id = None
            return self._follow_up()  # another response may be waiting for its create
        return []

    def _function_call(self, event: dict[str, Any], now: float) -> list[Action]:
        call_id, name = event.get("call_id"), event.get("name")
        arguments = event.get("arguments")
        if not isinstance(call_id, str) or call_id in self._seen_calls:
            return []  # the same call_id never runs twice
        self._seen_calls.add(call_id)
        response_id = event.get("response_id") or self._active_response or ""
        self._responses.setdefault(response_id, _Response()).call_ids.append(call_id)
        self._calls[call_id] = (
            response_id,
            str(name),
            arguments if isinstance(arguments, str) else "",
        )
        return [RunTool(call_id, str(name), arguments if isinstance(arguments, str) else "")]

    def _response_done(self, event: dict[str, Any]) -> list[Action]:
        response = event.get("response")
        if not isinstance(response, dict):
            response = {}
        response_id = _response_id(event)
        state = self._responses.setdefault(response_id, _Response())
        state.done, state.status = True, str(response.get("status", ""))
        if self._active_response == response_id:
            self._active_response = None
        self.stats.responses += 1
        self.stats.add_usage(response.get("usage"))
        if isinstance(response.get("usage"), dict):
            self.notes.append(Note("usage", response["usage"]))
        actions = self._follow_up()
        actions.append(ToClient(orjson.dumps(self.stats_event()).decode()))
        return actions

    # -- tool results -------------------------------------------------------------------------

    def tool_finished(
        self,
        call_id: str,
        output_json: str,
        page_event: dict[str, Any] | None,
        duration_ms: float,
        ok: bool,
    ) -> list[Action]:
        """The tool's output to the model, its event to the page, and maybe `response.create`."""
        _, name, arguments = self._calls.get(call_id, ("", "?", ""))
        self._outputs_sent.add(call_id)
        self.stats.tool_calls.append({"name": name, "duration_ms": duration_ms, "ok": ok})
        del self.stats.tool_calls[:-_KEEP]
        self._remember(
            "system", f"The {name} tool was called with {arguments} and returned {output_json}"
        )
        self.notes.append(
            Note(
                "tool",
                {
                    "name": name,
                    "arguments": arguments,
                    "output": output_json,
                    "ok": ok,
                    "ms": duration_ms,
                    "page_event": page_event,
                },
            )
        )
        if call_id in self._orphaned:
            # The model session that asked is gone; tell the new one in words instead.
            self._orphaned.discard(call_id)
            self._orphan_follow_up = True
            item = _message_item("system", self.history[-1][1])
        else:
            item = {
                "type": p.ITEM_CREATE,
                "event_id": p.event_id("relay"),
                "item": {"type": "function_call_output", "call_id": call_id, "output": output_json},
            }
        actions: list[Action] = [ToModel(orjson.dumps(item).decode())]
        if page_event is not None:
            actions.append(ToClient(orjson.dumps(page_event).decode()))
        actions.extend(self._follow_up())
        return actions

    def _follow_up(self) -> list[Action]:
        """One `response.create` once a response that called tools is done and all outputs sent.

        Only one response may be in progress, so it waits while another is active. A response
        that was cancelled (barge-in, client cancel) or failed gets no follow-up: the caller's
        next turn starts the next response, and it sees the outputs in the conversation.
        """
        ready = []
        for state in self._responses.values():
            if state.followed_up or not state.done or not state.call_ids:
                continue
            if all(c in self._outputs_sent for c in state.call_ids):
                ready.append(state)
        if not ready and not self._orphan_follow_up:
            return []
        wanted = self._orphan_follow_up or any(state.status == "completed" for state in ready)
        if wanted and (self._active_response is not None or self._create_in_flight):
            return []  # try again when the active response is done
        for state in ready:
            state.followed_up = True
        self._orphan_follow_up = False
        if not wanted:
            return []
        self._create_in_flight = True
        self._create_event_id = p.event_id("relay")
        create = {"type": p.RESPONSE_CREATE, "event_id": self._create_event_id}
        return [ToModel(orjson.dumps(create).decode())]

    @property
    def pending_calls(self) -> int:
        return len(self._seen_calls - self._outputs_sent)

    @property
    def quiet(self) -> bool:
        """No response and no tool call under way: a good moment to change model sessions."""
        return (
            self._active_response is None
            and not self._create_in_flight
            and not (self._seen_calls - self._outputs_sent)
        )

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
            actions.append(ToModel(orjson.dumps(_message_item(role, text)).decode()))
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
        item = _message_item("system", PROMPT if due == "prompt" else GOODBYE)
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


def _message_item(role: str, text: str) -> dict[str, Any]:
    """A conversation.item.create carrying plain text, as the model takes it for each role."""
    part = "output_text" if role == "assistant" else "input_text"
    return {
        "type": p.ITEM_CREATE,
        "event_id": p.event_id("relay"),
        "item": {"type": "message", "role": role, "content": [{"type": part, "text": text}]},
    }


def _is_in(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def _response_id(event: dict[str, Any]) -> str:
    response = event.get("response")
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        return response["id"]
    return ""


def _check_user_item(item: Any) -> None:
    if not isinstance(item, dict):
        raise Refused("invalid_event", "'item' must be an object.", "item")
    if item.get("type") != "message" or item.get("role") != "user":
        raise Refused(
            "item_not_allowed",
            "Clients may only add user messages; tool outputs and other items are the server's.",
            "item.type",
        )
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise Refused("invalid_event", "'item.content' must be a non-empty list.", "item.content")
    for part in content:
        if not isinstance(part, dict) or not _is_in(part.get("type"), USER_CONTENT_TYPES):
            raise Refused(
                "item_not_allowed",
                "User message content may be input_text or input_audio only.",
                "item.content",
            )


def _sanitise_session_update(event: dict[str, Any]) -> dict[str, Any]:
    """Keep the harmless fields (voice, turn detection, noise reduction); refuse the rest."""
    session = event.get("session")
    if not isinstance(session, dict):
        raise Refused("invalid_event", "'session' must be an object.", "session")
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    for key, value in session.items():
        if key == "type" and value == "realtime":
            continue
        if key != "audio" or not isinstance(value, dict):
            raise _not_yours(f"session.{key}")
        for side, settings in value.items():
            if side not in ("input", "output") or not isinstance(settings, dict):
                raise _not_yours(f"session.audio.{side}")
            for name, setting in settings.items():
                path = f"session.audio.{side}.{name}"
                if side == "output" and name == "voice":
                    if not _is_in(setting, VOICES):
                        raise Refused(
                            "invalid_value", f"Unknown voice {str(setting)[:40]!r}.", path
                        )
                    audio_out["voice"] = setting
                elif side == "input" and name == "turn_detection":
                    audio_in["turn_detection"] = _check_turn_detection(setting, path)
                elif side == "input" and name == "noise_reduction":
                    if setting is not None and setting not in (
                        {"type": "near_field"},
                        {"type": "far_field"},
                    ):
                        raise Refused("invalid_value", "Unknown noise reduction.", path)
                    audio_in["noise_reduction"] = setting
                else:
                    raise _not_yours(path)
    audio: dict[str, Any] = {}
    if audio_in:
        audio["input"] = audio_in
    if audio_out:
        audio["output"] = audio_out
    sanitised: dict[str, Any] = {"type": p.SESSION_UPDATE, "session": {"type": "realtime"}}
    if isinstance(event.get("event_id"), str):
        sanitised["event_id"] = event["event_id"]
    if audio:
        sanitised["session"]["audio"] = audio
    return sanitised


def _check_turn_detection(setting: Any, path: str) -> Any:
    if setting is None:
        return None
    if not isinstance(setting, dict) or setting.get("type") not in ("server_vad", "semantic_vad"):
        raise Refused("invalid_value", "turn_detection must be server_vad or semantic_vad.", path)
    extra = sorted(set(setting) - TURN_DETECTION_KEYS)
    if extra:
        raise _not_yours(f"{path}.{extra[0]}")
    for key, value in setting.items():
        rule = _TURN_DETECTION_VALUES.get(key)
        if rule is not None and not rule[0](value):
            raise Refused(
                "invalid_value", f"turn_detection.{key} must be {rule[1]}.", f"{path}.{key}"
            )
    return setting


def _is_ms(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# Checked here, not left to the model: a wrong-typed value is a client mistake to refuse by name
# (the offline model, for one, cannot apply it and fails every later session.update).
_TURN_DETECTION_VALUES: dict[str, tuple[Any, str]] = {
    "threshold": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
        "a number from 0 to 1",
    ),
    "prefix_padding_ms": (_is_ms, "a whole number of milliseconds"),
    "silence_duration_ms": (_is_ms, "a whole number of milliseconds"),
    "idle_timeout_ms": (lambda v: v is None or _is_ms(v), "a whole number of milliseconds"),
    "create_response": (lambda v: isinstance(v, bool), "true or false"),
    "interrupt_response": (lambda v: isinstance(v, bool), "true or false"),
    "eagerness": (lambda v: v in ("low", "medium", "high", "auto"), "low, medium, high or auto"),
}


def _not_yours(path: str) -> Refused:
    return Refused(
        "session_field_not_allowed",
        f"{path} is set by the server; clients may change only the voice and turn detection.",
        path,
    )
