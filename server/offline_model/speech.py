"""Speech recognition for the offline model, off the event loop: a small, bounded process pool.

Decoding one second of speech costs a few hundred milliseconds of CPU and holds the GIL (see
``asr_worker``), so it cannot share the event loop's process without stalling every other call's
audio. ``Recognizer`` hands utterances to ``workers`` spawned processes (spawn, not fork: the
parent runs an event loop and threads) and refuses new work once ``max_pending`` utterances are
waiting, so a burst of callers gets a quick "please repeat" instead of replies minutes late.
The pool starts on first use (or ``warm()``), so sessions that never speak never pay for it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from . import asr_worker
from .transcript import normalise

__all__ = ["Heard", "Recognizer", "RecognizerBusy", "default_workers"]


class RecognizerBusy(Exception):
    """Too many utterances are already waiting for a worker."""


@dataclass(frozen=True)
class Heard:
    """One utterance: the recogniser's words, the text made of them, and its CPU cost."""

    words: str
    text: str
    cpu_s: float


def default_workers() -> int:
    """Half the cores, at least one: recognition must leave room for the calls' own I/O."""
    return max(1, (os.cpu_count() or 2) // 2)


class Recognizer:
    """``await recognizer.transcribe(pcm16, rate)`` → ``Heard``; ``close()`` ends the workers."""

    def __init__(self, workers: int | None = None, max_pending: int | None = None) -> None:
        self.workers = workers or default_workers()
        self.max_pending = 8 * self.workers if max_pending is None else max_pending
        self.pending = 0
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=asr_worker.init,
            )
        return self._pool

    def prepare(self) -> None:
        """Start the workers building their decoders now, without waiting for them: called when
        a caller starts speaking, so the first utterance does not wait for a process start
        (about a second), and models that are never spoken to never start one."""
        if self._pool is None:
            pool = self._executor()
            for _ in range(self.workers):
                pool.submit(asr_worker.init)

    async def warm(self) -> None:
        """Start every worker and build its decoders now rather than on the first utterance."""
        loop = asyncio.get_running_loop()
        pool = self._executor()
        await asyncio.gather(
            *(loop.run_in_executor(pool, asr_worker.init) for _ in range(self.workers))
        )

    async def transcribe(self, pcm: bytes, rate: int) -> Heard:
        """Recognise one utterance of PCM16 mono at ``rate``; raises ``RecognizerBusy``."""
        if self.pending >= self.max_pending:
            raise RecognizerBusy(f"{self.pending} utterances are waiting for the recogniser")
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            words, cpu = await loop.run_in_executor(self._executor(), asr_worker.decode, pcm, rate)
        finally:
            self.pending -= 1
        return Heard(words, normalise(words), cpu)

    def close(self) -> None:
        """Stop the workers; utterances still queued are dropped (their calls are ending)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
