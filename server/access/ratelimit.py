"""Per-client limits kept in this process's memory. Pure: the clock is injected, no I/O.

`RequestLimiter` (REST requests per minute) is a GCRA, the "generic cell rate algorithm": one
float per address -- the time at which its allowance is whole again -- so memory is O(1) per
address, bursts of up to the limit pass, and the exact wait is known for `Retry-After`. Entries
whose allowance is whole are worth nothing and are evicted as they age.

`CallLimiter` (concurrent calls and new calls per minute on the voice socket) counts live calls
per address and keeps the start times of the last minute (at most the limit, so a bounded
deque). It is the shared PostgreSQL limit's first gate and fallback (`server.call_slots`): it
never needs the database, and whatever it refuses the shared count would refuse too.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Clock = Callable[[], float]
WINDOW_S = 60.0
EPSILON_S = 1e-6  # floating-point slack when adding up shares of a minute
MAX_TRACKED = 100_000  # addresses remembered at most; beyond it the stalest are forgotten

CallLimit = Literal["too_many_calls", "too_many_new_calls"]


@dataclass(frozen=True)
class Limited:
    """A refusal: which limit, and how long until trying again can work (0: unknown)."""

    limit: CallLimit | Literal["too_many_requests"]
    retry_after_s: float

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class RequestLimiter:
    """At most `per_min` requests per address per minute, with bursts of up to `per_min`."""

    def __init__(self, per_min: int, clock: Clock, max_tracked: int = MAX_TRACKED):
        self.enabled = per_min > 0
        self.interval = WINDOW_S / per_min if per_min else 0.0  # one request's share of a minute
        self.burst = WINDOW_S - self.interval  # how far ahead an allowance may be spent
        self.clock = clock
        self.max_tracked = max_tracked
        # address -> theoretical arrival time, oldest update first (for eviction)
        self._due: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._due)

    def hit(self, key: str) -> Limited | None:
        """Count one request from `key`; a `Limited` when it must be refused (not counted)."""
        if not self.enabled:
            return None
        now = self.clock()
        self._evict(now)
        due = max(self._due.get(key, now), now)
        if due - now > self.burst + EPSILON_S:  # N shares of 60/N must add up to 60 s
            return Limited("too_many_requests", due - now - self.burst)
        self._due[key] = due + self.interval
        self._due.move_to_end(key)
        return None

    def _evict(self, now: float) -> None:
        """Drop entries that no longer hold anything back, oldest updates first.

        The front is the least recently updated entry; one that still holds a debt stops the
        sweep, so an evictable entry can outstay its time by at most a minute.
        """
        due = self._due
        while due:
            key, value = next(iter(due.items()))
            if value > now and len(due) <= self.max_tracked:
                break
            del due[key]


class CallLimiter:
    """Concurrent calls (`max_live`) and calls started per minute (`per_min`) per address."""

    def __init__(self, max_live: int, per_min: int, clock: Clock):
        self.max_live = max_live
        self.per_min = per_min
        self.clock = clock
        self._live: dict[str, int] = {}
        # address -> start times in the last minute, least recently started address first
        self._starts: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.max_live > 0 or self.per_min > 0

    def tracked(self) -> int:
        """Addresses held in memory (live calls or starts in the last minute)."""
        return len(self._live.keys() | self._starts.keys())

    def try_start(self, key: str) -> Limited | None:
        """Start a call for `key`, or say which limit refuses it (nothing is counted then)."""
        now = self.clock()
        self._evict(now)
        if self.max_live and self._live.get(key, 0) >= self.max_live:
            return Limited("too_many_calls", 0.0)
        starts = self._starts.get(key)
        while starts and starts[0] <= now - WINDOW_S:  # an address behind the front of the queue
            starts.popleft()
        if self.per_min and starts is not None and len(starts) >= self.per_min:
            return Limited("too_many_new_calls", starts[0] + WINDOW_S - now)
        self._live[key] = self._live.get(key, 0) + 1
        if self.per_min:
            if starts is None:
                starts = self._starts[key] = deque(maxlen=self.per_min)
            starts.append(now)
            self._starts.move_to_end(key)
        return None

    def end(self, key: str) -> None:
        """A call started by `try_start` has ended."""
        left = self._live.get(key, 0) - 1
        if left > 0:
            self._live[key] = left
        else:
            self._live.pop(key, None)

    def undo(self, key: str) -> None:
        """Take back the last `try_start` of `key`, start time included (it never started)."""
        self.end(key)
        starts = self._starts.get(key)
        if starts:
            starts.pop()
            if not starts:
                del self._starts[key]

    def _evict(self, now: float) -> None:
        horizon = now - WINDOW_S
        while self._starts:
            key, starts = next(iter(self._starts.items()))
            while starts and starts[0] <= horizon:
                starts.popleft()
            if starts:
                break  # the least recently started address still counts: so do all after it
            del self._starts[key]
