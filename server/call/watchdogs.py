"""A call's watchdogs: a quiet caller, a peer that stopped reading, a silent caller to ask
after. Ticks, not a timer per frame. Part of `Call`."""

from __future__ import annotations

import asyncio
import logging
import time

from server.call.outbound import Outbound
from server.call.spec import (
    CLOSE_NORMAL,
    EndCall,
    server_error,
)
from server.realtime.session import CLOSE_INTERNAL, CLOSE_POLICY, Action, RelaySession
from server.settings import Settings

log = logging.getLogger("server.call")


class Watchdogs:
    """The call's clocks; `Call` supplies the state they read."""

    settings: Settings
    session: RelaySession
    last_caller_event: float
    to_caller: Outbound
    to_model: Outbound

    async def apply(self, actions: list[Action]) -> None:
        raise NotImplementedError

    async def watchdog(self) -> None:
        """End a call whose caller went quiet, or whose caller or model stopped reading.

        A watchdog rather than a timeout around each receive and send: no timer per audio frame.
        A send blocks only when the peer's buffers are full, i.e. it has stopped reading.
        """
        idle = self.settings.session_idle_timeout_s
        stuck = self.settings.send_timeout_s
        tick = min(idle, stuck) / 2
        while True:
            now = time.monotonic()
            if now - self.last_caller_event >= idle:
                error = server_error("idle_timeout", "No events for too long; the call was closed.")
                raise EndCall(CLOSE_NORMAL, "idle timeout", error)
            since = self.to_caller.busy_since
            if since and now - since >= stuck:
                log.warning("the caller stopped reading for %.0fs", now - since)
                raise EndCall(CLOSE_POLICY, "caller not reading")
            since = self.to_model.busy_since
            if since and now - since >= stuck:
                log.warning("the model stopped reading for %.0fs", now - since)
                error = server_error("model_disconnected", "The voice model stopped responding.")
                raise EndCall(CLOSE_INTERNAL, "model not reading", error)
            await asyncio.sleep(tick)

    async def silence_watch(self) -> None:
        """Let the session notice a silent caller (a tick, not a timer per event)."""
        silence = self.settings
        tick = min(1.0, silence.silence_prompt_s / 4, silence.silence_hangup_s / 4)
        while True:
            await asyncio.sleep(tick)
            actions = self.session.tick(time.monotonic())
            if actions:
                await self.apply(actions)
