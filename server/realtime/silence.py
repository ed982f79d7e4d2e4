"""When the caller goes quiet: ask whether they are still there, then say goodbye. Pure.

The clock starts when the host has finished speaking — not when the model finished sending,
which is faster than real time, but when the audio it sent has had time to play (its length
counted from the first delta), or, where OpenAI plays the audio itself (SIP), when it says the
caller has heard it all (`output_audio_buffer.stopped`). Caller speech (VAD's `speech_started`),
a typed message or a keypad entry stops it; a new response or a tool call pauses it. After
`prompt_s` of silence the host asks once whether the caller is still there; after `hangup_s`
more it says goodbye, and the call ends once that goodbye has played.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT = "The caller has said nothing for a while. Ask them briefly whether they are still there."
GOODBYE = (
    "The caller is still silent. Say a short, friendly goodbye (they can call back any time); "
    "the call ends after it."
)

WAITING, PROMPTED, SAYING_GOODBYE, DONE = range(4)


@dataclass
class Silence:
    prompt_s: float
    hangup_s: float
    bytes_per_ms: int = 48  # of the model's audio: PCM16 24 kHz 48, G.711 8
    stage: int = WAITING
    since: float | None = None  # when the host finished speaking; None while someone speaks
    _audio_started: float | None = None  # first audio delta of the current response
    _audio_ms: float = 0.0  # its audio so far
    _playing_out: bool = False  # OpenAI is playing audio to the caller (SIP): wait for its end

    def caller_active(self) -> None:
        self.stage, self.since = WAITING, None

    def response_started(self) -> None:
        self.since = None
        self._audio_started, self._audio_ms = None, 0.0

    def audio(self, now: float, delta_chars: int) -> None:
        if self._audio_started is None:
            self._audio_started = now
        self._audio_ms += delta_chars * 3 / 4 / self.bytes_per_ms

    def playout(self, now: float, playing: bool) -> None:
        self._playing_out = playing
        if playing:
            self.since = None
        elif self.stage != DONE:
            self.since = now

    def response_done(self, now: float) -> None:
        if self._playing_out:
            return  # the clock starts when the playout stops
        started = now if self._audio_started is None else self._audio_started
        played = started + self._audio_ms / 1000
        self.since = max(now, played)
        self._audio_started, self._audio_ms = None, 0.0

    def due(self, now: float, busy: bool) -> str | None:
        """ "prompt", "goodbye", "hang up" or None; `busy`: a response or tool call under way."""
        if busy or self.since is None or self.stage == DONE:
            return None
        quiet = now - self.since
        if self.stage == WAITING and quiet >= self.prompt_s:
            self.stage, self.since = PROMPTED, None
            return "prompt"
        if self.stage == PROMPTED and quiet >= self.hangup_s:
            self.stage, self.since = SAYING_GOODBYE, None
            return "goodbye"
        if self.stage == SAYING_GOODBYE and quiet >= 0:
            self.stage = DONE
            return "hang up"
        return None
