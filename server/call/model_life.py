"""A call's model session over time: replaced after a drop (the call replayed into the new one),
rotated before the model's session-length cap, at a quiet moment. Part of `Call`."""

from __future__ import annotations

import asyncio
import logging
import time

from server.call.model import ModelClosed, ModelConnection, ModelUnavailable
from server.call.outbound import Outbound
from server.call.spec import (
    FATAL_MODEL_ERRORS,
    RECONNECT_DELAYS_S,
    CallSpec,
    EndCall,
    server_error,
)
from server.realtime.session import CLOSE_INTERNAL, RelaySession, ToClient, ToModel
from server.settings import Settings

log = logging.getLogger("server.call")


class ModelLife:
    """The model connection's replacement and rotation; `Call` supplies the state it uses."""

    spec: CallSpec
    settings: Settings
    session: RelaySession
    model: ModelConnection | None
    model_since: float
    replacing: asyncio.Lock
    to_caller: Outbound
    background: set[asyncio.Future[None]]
    quiet: asyncio.Event

    def _report(self) -> None:
        raise NotImplementedError

    async def replace_model(self, dead: ModelConnection, reason: str) -> None:
        """Open a fresh model session with backoff and replay the call into it.

        Whoever notices first (the model's reader, a writer) replaces; the others wait on the
        lock and find the model already replaced. The replay goes to the new connection before
        it becomes `self.model`, so no other event reaches it ahead of the session settings and
        the conversation so far.
        """
        async with self.replacing:
            if self.model is not dead:
                return
            last: ModelUnavailable | None = None
            for delay in RECONNECT_DELAYS_S[: self.settings.model_reconnect_attempts]:
                await asyncio.sleep(delay)
                try:
                    new = await self.spec.connect_model()
                except ModelUnavailable as exc:
                    last = exc
                    log.warning("reconnecting to the model (%s) failed: %s", reason, exc.message)
                    if exc.code in FATAL_MODEL_ERRORS:
                        break
                    continue
                actions = self.session.replay(reason, conversation=not self.spec.sideband)
                self._report()
                try:
                    for action in actions:
                        if type(action) is ToModel:
                            await new.send(action.text)
                except ModelClosed:
                    await new.close()
                    continue
                self.model, self.model_since = new, time.monotonic()
                await dead.close()
                log.info(
                    "model session replaced (%s); replayed %d items",
                    reason,
                    len(self.session.history),
                )
                for action in actions:
                    if type(action) is ToClient:
                        self.to_caller.push(action.text)
                flushing = asyncio.ensure_future(self._flush_quietly())
                self.background.add(flushing)
                flushing.add_done_callback(self.background.discard)
                return
        message = last.message if last else "it closed during the replay."
        raise EndCall(
            CLOSE_INTERNAL,
            "model disconnected",
            server_error(
                "model_disconnected", f"The connection to the voice model was lost: {message}"
            ),
        )

    async def _flush_quietly(self) -> None:
        """Write what a replacement queued for the caller, from outside the model's write path."""
        try:
            await self.to_caller.flush()
        except Exception as exc:  # the caller's reader will notice the same and end the call
            log.debug("caller write after a model replacement failed: %s", exc)

    async def rotate_model(self) -> None:
        """Move to a fresh model session before the model's session-length cap, when quiet."""
        cap = self.settings.model_session_max_s
        while True:
            await asyncio.sleep(max(0.0, cap - (time.monotonic() - self.model_since)))
            if time.monotonic() - self.model_since < cap:
                continue  # replaced meanwhile (a drop): its clock started again
            while not self.session.quiet:  # a reply or tool call is under way: let it finish
                self.quiet.clear()
                await self.quiet.wait()
            assert self.model is not None
            await self.replace_model(self.model, "model_session_limit")
