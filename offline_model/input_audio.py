"""Input audio: the buffer, server VAD turns, commits, and the recogniser's jobs they create.

A mixin of ``conversation.Conversation`` (its one idea: what happens to the caller's audio until
it becomes a committed item, and, with a recogniser at hand, a ``Transcribe`` job that says what
the host just asked for, so the recogniser listens for digits after "what phone number?").
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from protocol import realtime as p

from . import events
from .audio import EnergyVad
from .errors import ClientError, missing
from .events import Event
from .formats import AudioFormat
from .items import Items
from .response import ResponseRun

__all__ = ["InputAudio", "Transcribe"]

MIN_COMMIT_MS = 100  # the API refuses to commit less than 100 ms of audio
MAX_UTTERANCE_MS = 30_000  # audio kept for the recogniser; older audio of a longer turn is dropped
IDLE_KEEP_MS = 1_000  # kept before speech starts (covers prefix_padding_ms)


@dataclass(frozen=True)
class Transcribe:
    """A committed utterance for the recogniser: PCM16 mono at ``rate``, listening for
    ``listen`` (a ``grammars.Listen`` value: what the host's last question asked for)."""

    item_id: str
    pcm: bytes
    rate: int
    listen: str = "general"


Output = Event | ResponseRun | Transcribe


class InputAudio(Items):
    """The input audio buffer (a mixin: ``Conversation`` sets these attributes up)."""

    session: dict[str, Any]
    _buffer_bytes: int
    _listen: bool
    _listen_for: str
    _input: AudioFormat
    _pcm: bytearray
    _transcribing: set[str]
    _deferred: dict[str, Any] | None
    _speech_item_id: str | None
    _vad: EnergyVad
    _context_audio_tokens: int

    def _respond(self, options: dict[str, Any]) -> list[Output]:
        raise NotImplementedError  # Conversation answers

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

    def _audio_append(self, message: dict[str, Any]) -> list[Output]:
        data = message.get("audio")
        if not isinstance(data, str):
            raise missing("audio")
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
            out.append(Transcribe(item_id, pcm, self._input.rate, self._listen_for))
        return out

    def _audio_clear(self, message: dict[str, Any]) -> list[Output]:
        self._reset_buffer()
        self._speech_item_id = None
        self._vad.reset()
        return [events.event(p.INPUT_AUDIO_CLEARED)]
