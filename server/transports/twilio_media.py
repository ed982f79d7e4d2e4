"""Twilio Media Streams, sans I/O: Twilio's messages and the model's events in, actions out.

`TwilioMedia` is one phone call's state on the carrier side. It never touches a socket or a
clock: `twilio_stream.py` feeds it what Twilio sends (`from_twilio`) and what the model says
(`from_model`), and carries out what comes back.

- Caller audio (`media`, base64 μ-law 8 kHz) becomes `input_audio_buffer.append`, the same
  base64 text: no resampling (the model session is `audio/pcmu` both ways). With `chunk_bytes`
  above one frame (`MODEL_AUDIO_CHUNK_MS`), frames are gathered into one append of that size:
  fewer messages, but the model hears the caller up to a chunk less one frame later. Whatever
  else goes to the model (keypad digits) first takes the audio gathered so far, so order holds.
- Model audio deltas become Twilio `media` frames, with a `mark` after every `MARK_EVERY_MS` of
  audio (and after the last audio of a response). Twilio echoes a mark once the audio before it
  has played, so `Playback` knows what the caller actually heard -- to within `MARK_EVERY_MS`
  (or one delta, if a delta is longer): a mark per 20 ms delta doubled the messages of a call.
- Barge-in: on `input_audio_buffer.speech_started` while audio is unheard, send `clear` to Twilio
  and `conversation.item.truncate` with `audio_end_ms` = what the acknowledged marks say was played
  (never more than was played: it lags what was heard by less than `MARK_EVERY_MS` plus a
  delta). Marks echoed after a `clear` belong to dropped audio: their names
  carry a generation number, and old generations are ignored.
- Keypad digits collect until `#` and reach the model as a user message it can act on.
- `end_call` and `transfer_call` (page events from their tools) wait until the host's last words
  have played, then the call ends or is handed over.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import orjson

from protocol import realtime as p
from server.realtime.peek import event_type
from server.realtime.session import ToClient, ToModel

MULAW_BYTES_PER_MS = 8
MAX_DIGITS = 20  # keypad digits held before they are sent without a closing '#'
MARK_EVERY_MS = 100  # audio sent between marks: the precision of what the caller is known to hear
MARK_EVERY_BYTES = MARK_EVERY_MS * MULAW_BYTES_PER_MS


@dataclass(frozen=True, slots=True)
class Started:
    """Twilio's `start`: the call's ids and the `<Parameter>`s our TwiML gave the stream."""

    stream_sid: str
    call_sid: str
    account_sid: str
    parameters: dict[str, str]
    media_format: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Stopped:
    """Twilio's `stop`, or the host's last words have played and the call should end."""

    reason: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """The host's last words before a transfer have played: hand the call to `number`."""

    number: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message that is not Twilio's; `message` says why (logged, the call goes on)."""

    message: str


Outcome = ToModel | ToClient | Started | Stopped | Transfer | Invalid


def _decoded_length(b64: str) -> int:
    """Bytes in a base64 string, without decoding it."""
    return len(b64) * 3 // 4 - b64.count("=", -2)


@dataclass
class Playback:
    """What the caller has heard of the assistant's current audio item."""

    item_id: str | None = None
    sent: int = 0  # bytes of `item_id` sent to Twilio
    heard: int = 0  # bytes of `item_id` whose marks Twilio has echoed
    marked: int = 0  # bytes of `item_id` covered by the last mark sent
    generation: int = 0  # bumped by every `clear`; marks of older generations are ignored
    marks: dict[str, int] = field(default_factory=dict)  # mark name -> `sent` after its chunk
    sequence: int = 0

    @property
    def unheard(self) -> bool:
        return self.sent > self.heard

    def chunk_sent(self, item_id: str, size: int) -> str | None:
        """Count a chunk of `item_id`; the name of the mark to send after it, if one is due."""
        if item_id != self.item_id:
            self.item_id, self.sent, self.heard, self.marked = item_id, 0, 0, 0
            self.marks.clear()
        self.sent += size
        if self.sent - self.marked < MARK_EVERY_BYTES:
            return None
        return self._mark()

    def rest(self) -> str | None:
        """A mark for audio sent since the last one (the end of a response), if any."""
        return self._mark() if self.sent > self.marked else None

    def _mark(self) -> str:
        self.marked = self.sent
        self.sequence += 1
        name = f"{self.generation}.{self.sequence}"
        self.marks[name] = self.sent
        return name

    def mark_echoed(self, name: str) -> None:
        sent = self.marks.pop(name, None)
        if sent is not None:  # else: an older generation's, or another item's
            self.heard = max(self.heard, sent)

    def cleared(self) -> int:
        """Twilio drops what it holds: return the milliseconds heard, and start afresh."""
        heard_ms = min(self.heard, self.sent) // MULAW_BYTES_PER_MS
        self.generation += 1
        self.marks.clear()
        self.sent = self.marked = self.heard
        return heard_ms


@dataclass
class TwilioMedia:
    """One phone call's carrier-side state; see the module docstring."""

    stream_sid: str = ""
    playback: Playback = field(default_factory=Playback)
    digits: str = ""
    interrupted: set[str] = field(default_factory=set)  # items cut off by the caller
    after_playback: Stopped | Transfer | None = None  # what to do once the host has finished
    armed: bool = False  # the host's last response has started: act once it is done and heard
    responding: bool = False  # a response is under way (its audio may still come)
    chunk_bytes: int = 0  # caller audio per append; 0 or one frame: each frame as received
    gathered: bytearray = field(default_factory=bytearray)  # caller audio not yet appended

    # -- Twilio -> us -----------------------------------------------------------------------------

    def from_twilio(self, text: str) -> list[Outcome]:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [Invalid("not JSON")]
        if not isinstance(message, dict):
            return [Invalid("not a JSON object")]
        event = message.get("event")
        if event == "media":
            media = message.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str) or (audio := _base64(payload)) is None:
                return [Invalid("media without a base64 payload")]
            if self.chunk_bytes <= len(audio) and not self.gathered:
                return [_append(payload)]  # as received: the same text, not re-encoded
            self.gathered += audio
            if len(self.gathered) < self.chunk_bytes:
                return []
            return self._take_audio()
        if event == "mark":
            mark = message.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if isinstance(name, str):
                self.playback.mark_echoed(name)
            return self._finished_playing()
        if event == "dtmf":
            dtmf = message.get("dtmf")
            digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
            if not isinstance(digit, str):
                return [Invalid("dtmf without digit")]
            typed = self._digit(digit)
            return [*self._take_audio(), *typed] if typed else []
        if event == "start":
            return [self._started(message)]
        if event == "stop":
            return [Stopped("caller hung up")]
        if event == "connected":
            return []
        return [Invalid(f"unknown event {str(event)[:40]!r}")]

    def _take_audio(self) -> list[Outcome]:
        """The caller audio gathered so far as one append (none if there is none)."""
        if not self.gathered:
            return []
        audio = base64.b64encode(self.gathered).decode()
        self.gathered.clear()
        return [_append(audio)]

    def _started(self, message: dict[str, Any]) -> Started | Invalid:
        start = message.get("start")
        sid = message.get("streamSid") or (start or {}).get("streamSid")
        if not isinstance(start, dict) or not isinstance(sid, str) or not sid:
            return Invalid("start without streamSid")
        self.stream_sid = sid
        parameters = start.get("customParameters")
        media_format = start.get("mediaFormat")
        return Started(
            stream_sid=sid,
            call_sid=str(start.get("callSid") or ""),
            account_sid=str(start.get("accountSid") or ""),
            parameters={str(k): str(v) for k, v in (parameters or {}).items()}
            if isinstance(parameters, dict)
            else {},
            media_format=media_format if isinstance(media_format, dict) else {},
        )

    def _digit(self, digit: str) -> list[Outcome]:
        if digit == "#" or len(self.digits) + 1 >= MAX_DIGITS:
            typed = self.digits + (digit if digit != "#" else "")
            self.digits = ""
            if not typed:
                return []
            text = f"(The caller typed on the phone's keypad: {typed})"
            item = {
                "type": p.ITEM_CREATE,
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                },
            }
            create = ToModel(orjson.dumps({"type": p.RESPONSE_CREATE}).decode())
            return [ToModel(orjson.dumps(item).decode()), create]
        if digit in "0123456789*":
            self.digits += digit
        return []

    # -- the model (and our page events) -> Twilio ---------------------------------------------

    def from_model(self, text: str) -> list[Outcome]:
        """Model (and page) events to Twilio. The type comes from the prefix where that alone
        decides it, else from the parsed event: key order and spacing change nothing."""
        kind, event = event_type(text)
        if kind == p.OUTPUT_AUDIO_DELTA:
            return self._audio(text, event)
        if kind == p.SPEECH_STARTED:
            return self._barge_in()
        if kind == p.RESPONSE_CREATED:
            self.responding = True
            self.armed = self.after_playback is not None
        elif kind == p.RESPONSE_DONE:
            self.responding = False
            return [*self._mark_rest(), *self._finished_playing()]
        elif kind == p.CALL_END_REQUESTED:
            self._after_next_response(Stopped("host ended the call"))
        elif kind == p.CALL_TRANSFER_REQUESTED:
            number = _field(text, event, "number")
            if number:
                self._after_next_response(Transfer(number))
        return []

    def _after_next_response(self, then: Stopped | Transfer) -> None:
        """The tool's output makes the host speak once more (its goodbye): act after that."""
        self.after_playback, self.armed = then, False

    def _audio(self, text: str, event: dict[str, Any] | None) -> list[Outcome]:
        if event is None:
            try:
                event = orjson.loads(text)
            except orjson.JSONDecodeError:
                return [Invalid("model audio that is not JSON")]
            if not isinstance(event, dict):
                return [Invalid("model audio that is not a JSON object")]
        item_id, delta = event.get("item_id"), event.get("delta")
        if not isinstance(delta, str) or not isinstance(item_id, str):
            return [Invalid("model audio without item_id or delta")]
        if item_id in self.interrupted or not self.stream_sid:
            return []
        mark = self.playback.chunk_sent(item_id, _decoded_length(delta))
        media = {"event": "media", "streamSid": self.stream_sid, "media": {"payload": delta}}
        if mark is None:
            return [ToClient(orjson.dumps(media).decode())]
        return [ToClient(orjson.dumps(media).decode()), self._marker(mark)]

    def _marker(self, name: str) -> ToClient:
        marker = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        return ToClient(orjson.dumps(marker).decode())

    def _mark_rest(self) -> list[Outcome]:
        """After a response's last audio: mark it, so its end is known once played."""
        name = self.playback.rest() if self.stream_sid else None
        return [] if name is None else [self._marker(name)]

    def _barge_in(self) -> list[Outcome]:
        playback = self.playback
        if not playback.unheard or playback.item_id is None:
            return []
        item_id = playback.item_id
        heard_ms = playback.cleared()
        self.interrupted.add(item_id)
        clear = {"event": "clear", "streamSid": self.stream_sid}
        truncate = {
            "type": p.ITEM_TRUNCATE,
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": heard_ms,
        }
        return [ToClient(orjson.dumps(clear).decode()), ToModel(orjson.dumps(truncate).decode())]

    def _finished_playing(self) -> list[Outcome]:
        """End or hand over the call once a pending goodbye has been heard in full."""
        ending = self.after_playback
        if ending is None or not self.armed or self.responding or self.playback.unheard:
            return []
        self.after_playback = None
        return [ending]


def _field(text: str, event: dict[str, Any] | None, name: str) -> str | None:
    if event is None:
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
    value = event.get(name) if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


def _append(audio: str) -> ToModel:
    """An append of base64 audio (checked base64: nothing in it needs escaping)."""
    return ToModel('{"type":"input_audio_buffer.append","audio":"' + audio + '"}')


def _base64(payload: str) -> bytes | None:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
