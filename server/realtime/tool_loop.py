"""The tool-call loop of a call, as state the session keeps: no I/O.

The model asks for tools inside a response; each `call_id` runs once; once a response that
called tools is done and every output is sent, one `response.create` makes the model speak
again -- but only one response may be in progress, so it waits while another is active. A model
session replaced mid-call leaves its calls orphaned: their results are told to the new one in
words. `RelaySession` builds on this class; it supplies the figures, notes and history
(`stats`, `notes`, `history`, `_remember`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from protocol import realtime as p
from server.realtime.actions import Action, Note, RunTool, ToClient, ToModel
from server.realtime.stats import KEEP, Stats


@dataclass
class _Response:
    call_ids: list[str] = field(default_factory=list)
    done: bool = False
    status: str = ""
    followed_up: bool = False


class ToolLoop:
    """Responses and tool calls of one call; see the module docstring."""

    stats: Stats
    notes: list[Note]
    history: list[tuple[str, str]]

    def __init__(self) -> None:
        self._orphaned: set[str] = set()  # calls whose model session is gone
        self._orphan_follow_up = False
        self._responses: dict[str, _Response] = {}
        self._calls: dict[str, tuple[str, str, str]] = {}  # call_id -> (response_id, name, args)
        self._seen_calls: set[str] = set()
        self._outputs_sent: set[str] = set()
        self._active_response: str | None = None
        self._create_in_flight = False
        self._create_event_id: str | None = None  # our response.create awaiting response.created

    def _remember(self, role: str, text: str) -> None:
        raise NotImplementedError

    def stats_event(self) -> dict[str, Any]:
        raise NotImplementedError

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
        response_id = response_id_of(event)
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
        del self.stats.tool_calls[:-KEEP]
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
            item = message_item("system", self.history[-1][1])
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


def message_item(role: str, text: str) -> dict[str, Any]:
    """A conversation.item.create carrying plain text, as the model takes it for each role."""
    part = "output_text" if role == "assistant" else "input_text"
    return {
        "type": p.ITEM_CREATE,
        "event_id": p.event_id("relay"),
        "item": {"type": "message", "role": role, "content": [{"type": part, "text": text}]},
    }


def response_id_of(event: dict[str, Any]) -> str:
    response = event.get("response")
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        return response["id"]
    return ""
