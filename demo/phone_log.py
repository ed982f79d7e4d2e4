"""The phone demo's pure part: Twilio's playback clock, and what happened on the call.

`PhonePlayer` is Twilio's playback buffer for one call on a clock passed in: it says when each
`mark` is due (the audio before it has played) and what a `clear` drops. `PhoneLog` keeps the
lines' facts and the verdict. Neither holds a socket, so their rules are tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from demo import phone_audio


class PhoneDemoFailed(Exception):
    """The demo cannot succeed; the message says why."""


@dataclass
class PhonePlayer:
    """Twilio's playback buffer for one call, on a clock passed in (seconds).

    Audio plays in order at 8 bytes a millisecond; a `mark` is due when everything sent before it
    has played. `clear` drops the unplayed audio; its pending marks are due at once.
    """

    playing_until: float = 0.0
    received_ms: float = 0.0  # all audio received, in ms
    marks: list[tuple[float, str]] = field(default_factory=list)  # (due, name), in order

    def media(self, byte_count: int, now: float) -> None:
        ms = byte_count / phone_audio.BYTES_PER_MS
        self.received_ms += ms
        self.playing_until = max(self.playing_until, now) + ms / 1000

    def mark(self, name: str, now: float) -> None:
        self.marks.append((max(self.playing_until, now), name))

    def due_marks(self, now: float) -> list[str]:
        due = [name for at, name in self.marks if at <= now]
        self.marks = [(at, name) for at, name in self.marks if at > now]
        return due

    def clear(self, now: float) -> tuple[float, list[str]]:
        """Drop the unplayed audio: (ms of it dropped, the marks to send back now)."""
        dropped_ms = max(0.0, self.playing_until - now) * 1000
        self.playing_until = min(self.playing_until, now)
        names = [name for _, name in self.marks]
        self.marks.clear()
        return dropped_ms, names

    def idle(self, now: float) -> bool:
        return now >= self.playing_until and not self.marks

    def next_due(self) -> float | None:
        return self.marks[0][0] if self.marks else None


@dataclass
class Reply:
    """Audio from the host after some moment of the script."""

    first_at: float | None = None
    last_at: float | None = None
    ms: float = 0.0


@dataclass
class PhoneLog:
    """What happened on the call, as the demo saw it; the verdict."""

    started_at: float | None = None
    greeting: Reply = field(default_factory=Reply)
    after_speech: Reply = field(default_factory=Reply)
    after_digits: Reply = field(default_factory=Reply)
    stage: str = "greeting"  # which Reply new audio belongs to
    cleared: bool = False
    heard_greeting_ms: float | None = None
    dropped_ms: float | None = None
    clear_after_speech_ms: float | None = None
    closed_code: int | None = None
    ended: str | None = None
    failure: str | None = None
    marks_sent: int = 0

    def reply(self) -> Reply:
        return {"greeting": self.greeting, "speech": self.after_speech}.get(
            self.stage, self.after_digits
        )

    def media(self, byte_count: int, now: float) -> None:
        reply = self.reply()
        if reply.first_at is None:
            reply.first_at = now
        reply.last_at = now
        reply.ms += byte_count / phone_audio.BYTES_PER_MS

    def fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message

    def summary(self) -> list[str]:
        lines = ["── phone call ──"]
        greeting = self.greeting
        if greeting.first_at is not None and self.started_at is not None:
            lines.append(
                f"  greeting        first media {1000 * (greeting.first_at - self.started_at):.0f}"
                f" ms after start, {greeting.ms:.0f} ms of audio"
            )
        else:
            lines.append("  greeting        none")
        if self.cleared:
            lines.append(
                f"  barge-in        clear {self.clear_after_speech_ms:.0f} ms after you began "
                f"speaking; you heard {self.heard_greeting_ms:.0f} ms, "
                f"{self.dropped_ms:.0f} ms dropped"
            )
        else:
            lines.append("  barge-in        no clear")
        lines.append(f"  speech reply    {self.after_speech.ms:.0f} ms of audio")
        lines.append(f"  keypad reply    {self.after_digits.ms:.0f} ms of audio")
        lines.append(f"  marks sent back {self.marks_sent}")
        lines.append(f"  ended           {self.ended or 'no'}")
        return lines

    @property
    def succeeded(self) -> bool:
        return (
            self.failure is None
            and self.greeting.ms > 0
            and self.cleared
            and self.after_digits.ms > 0
            and self.ended is not None
        )
