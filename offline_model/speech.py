"""Speech recognition for the offline model, off the event loop: a small, bounded process pool.

Decoding costs about 65 ms of CPU per second of speech (``python -m bench speech``), half a
second for a long booking sentence, and holds the GIL throughout (see ``asr_worker``), so it
cannot share the event loop's process without stalling every other call's audio. ``Recognizer``
hands utterances to ``workers`` spawned processes (spawn, not fork: the parent runs an event loop
and threads) and refuses new work once ``max_pending`` utterances are in flight, so a burst of
callers gets a quick "please repeat" instead of replies many seconds late. The pool starts when a
caller first speaks (``prepare``), so models never spoken to never pay for it; a pool whose
worker died is replaced on the next utterance.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from . import asr_worker
from .transcript import normalise

__all__ = ["Heard", "Recognizer", "RecognizerBusy", "default_workers"]


class RecognizerBusy(Exception):
    """Too many utterances are already waiting for a worker."""


@dataclass(frozen=True)
class Heard:
    """One utterance: the recogniser's words, the text made of them, its CPU cost, and what
    they were heard as (``grammars.Listen``: the question's answer, or "general")."""

    words: str
    text: str
    cpu_s: float
    heard_as: str = "general"


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

    async def transcribe(self, pcm: bytes, rate: int, listen: str = "general") -> Heard:
        """Recognise one utterance of PCM16 mono at ``rate``, listening for ``listen`` (what
        the host just asked for); raises ``RecognizerBusy``."""
        if self.pending >= self.max_pending:
            raise RecognizerBusy(f"{self.pending} utterances are already with the recogniser")
        self.pending += 1
        pool = self._executor()
        try:
            loop = asyncio.get_running_loop()
            words, heard_as, cpu = await loop.run_in_executor(
                pool, asr_worker.decode, pcm, rate, listen
            )
        except BrokenProcessPool:
            if self._pool is pool:  # a worker died (killed, out of memory): start afresh
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            self.pending -= 1
        return Heard(words, normalise(words), cpu, heard_as)

    def close(self) -> None:
        """Stop the workers; utterances still queued are dropped (their calls are ending)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
