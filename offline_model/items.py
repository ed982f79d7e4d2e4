"""Conversation items: create, truncate, delete, retrieve, and the ledger responses write to.

A mixin of ``conversation.Conversation`` (its one idea: the ordered item list with each item's
predecessor, assistant audio lengths for truncation, and the function calls outputs answer).
The state it shares with the rest of the conversation is declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from protocol import realtime as p

from . import events
from .dialog import Call, Slots
from .errors import ClientError, missing
from .events import Event
from .intents import parse
from .response import ResponseRun
from .stats import Stats

__all__ = ["ITEM_DELETED", "ITEM_RETRIEVE", "ITEM_RETRIEVED", "Items"]

ITEM_DELETED = "conversation.item.deleted"
ITEM_RETRIEVE = "conversation.item.retrieve"
ITEM_RETRIEVED = "conversation.item.retrieved"


class Items:
    """The conversation's items (a mixin: ``Conversation`` sets these attributes up)."""

    slots: Slots
    stats: Stats
    active: ResponseRun | None
    _today: Callable[[], date]
    _items: dict[str, dict[str, Any]]
    _previous: dict[str, str | None]
    _last_item_id: str | None
    _audio_ms: dict[str, int]  # assistant audio item -> playable length
    _calls: dict[str, Call]  # call_id -> the call it answers
    _fresh_text: bool
    _fresh_audio: bool
    _fresh_outputs: list[tuple[Call, str]]
    _context_text_tokens: int

    def _item_create(self, message: dict[str, Any]) -> list[Event]:
        item = message.get("item")
        if not isinstance(item, dict):
            raise missing("item")
        item_id = item.get("id") or events.new_id("item")
        if not isinstance(item_id, str) or item_id in self._items:
            raise ClientError(
                "invalid_value", f"Item id '{item_id}' is invalid or in use.", "item.id"
            )
        kind = item.get("type")
        if kind == "message":
            stored = self._message_item(item_id, item)
        elif kind == "function_call_output":
            stored = self._function_output_item(item_id, item)
        elif kind == "function_call":
            stored = self._function_call_item(item_id, item)
        elif kind is None:
            raise missing("item.type")
        else:
            raise ClientError("invalid_value", f"Invalid item type: '{kind}'.", "item.type")
        return self._append_item(stored)

    def _message_item(self, item_id: str, item: dict[str, Any]) -> dict[str, Any]:
        role = item.get("role")
        if role not in ("user", "assistant", "system"):
            raise ClientError("invalid_value", f"Invalid role: '{role}'.", "item.role")
        content = item.get("content")
        if not isinstance(content, list):
            raise missing("item.content")
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise missing("item.content[].type")
            text = part.get("text")
            if isinstance(text, str):
                self._context_text_tokens += events.text_tokens(text)
                if role == "user" and part["type"] == "input_text":
                    self.slots.absorb(parse(text, self._today()))
                    self._fresh_text = True
            if role == "user" and part["type"] == "input_audio":
                self._fresh_audio = True
        stored = {"id": item_id, "type": "message", "object": "realtime.item"}
        return {**stored, "status": "completed", "role": role, "content": content}

    def _function_output_item(self, item_id: str, item: dict[str, Any]) -> dict[str, Any]:
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise missing("item.call_id")
        if not isinstance(output, str):
            raise missing("item.output")
        call = self._calls.get(call_id)
        if call is None:
            raise ClientError(
                "invalid_value",
                f"No function call with call_id '{call_id}' found in the conversation.",
                "item.call_id",
            )
        self.stats.function_outputs_received += 1
        self._fresh_outputs.append((call, output))
        self._context_text_tokens += events.text_tokens(output)
        return {
            "id": item_id,
            "type": "function_call_output",
            "object": "realtime.item",
            "status": "completed",
            "call_id": call_id,
            "output": output,
        }

    def _function_call_item(self, item_id: str, item: dict[str, Any]) -> dict[str, Any]:
        """A client may replay a call into history; its output is then accepted too."""
        name, call_id = item.get("name"), item.get("call_id")
        if not isinstance(name, str) or not isinstance(call_id, str):
            raise missing("item.name" if not isinstance(name, str) else "item.call_id")
        arguments = item.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = {}
        self._calls[call_id] = Call(name, parsed if isinstance(parsed, dict) else {})
        return {
            "id": item_id,
            "type": "function_call",
            "object": "realtime.item",
            "status": "completed",
            "name": name,
            "call_id": call_id,
            "arguments": arguments,
        }

    def _append_item(self, item: dict[str, Any]) -> list[Event]:
        previous = self.add_item(item)
        return [
            events.event(p.ITEM_ADDED, previous_item_id=previous, item=item),
            events.event(p.ITEM_DONE, previous_item_id=previous, item=item),
        ]

    def _item_truncate(self, message: dict[str, Any]) -> list[Event]:
        item_id = message.get("item_id")
        content_index = message.get("content_index")
        end_ms = message.get("audio_end_ms")
        for name, value in (("item_id", item_id), ("content_index", content_index)):
            if value is None:
                raise missing(name)
        if not isinstance(end_ms, int) or isinstance(end_ms, bool):
            raise missing("audio_end_ms")
        length = self._audio_length_ms(item_id) if isinstance(item_id, str) else None
        if length is None:
            raise ClientError(
                "invalid_value",
                f"Item '{item_id}' is not an assistant audio item in this conversation.",
                "item_id",
            )
        if content_index != 0:
            raise ClientError("invalid_value", "content_index must be 0.", "content_index")
        if not 0 <= end_ms <= length:
            raise ClientError(
                "invalid_value",
                f"Audio content of {length}ms is already shorter than {end_ms}ms.",
                "audio_end_ms",
            )
        assert isinstance(item_id, str)
        self._audio_ms[item_id] = end_ms
        return [
            events.event(p.ITEM_TRUNCATED, item_id=item_id, content_index=0, audio_end_ms=end_ms)
        ]

    def _audio_length_ms(self, item_id: str) -> int | None:
        run = self.active
        if run and run.item and run.item["id"] == item_id and run.modality == "audio":
            return run.audio_format.ms(run.audio_bytes)
        return self._audio_ms.get(item_id)

    def _item_delete(self, message: dict[str, Any]) -> list[Event]:
        item_id = message.get("item_id")
        if not isinstance(item_id, str):
            raise missing("item_id")
        if item_id not in self._items:
            raise ClientError("invalid_value", f"Item '{item_id}' does not exist.", "item_id")
        del self._items[item_id]
        self._audio_ms.pop(item_id, None)
        return [events.event(ITEM_DELETED, item_id=item_id)]

    def _item_retrieve(self, message: dict[str, Any]) -> list[Event]:
        item_id = message.get("item_id")
        if not isinstance(item_id, str):
            raise missing("item_id")
        if item_id not in self._items:
            raise ClientError("invalid_value", f"Item '{item_id}' does not exist.", "item_id")
        return [events.event(ITEM_RETRIEVED, item=self._items[item_id])]

    # --- the ledger ResponseRun writes through ----------------------------------------------

    def add_item(self, item: dict[str, Any]) -> str | None:
        previous = self._last_item_id
        self._items[item["id"]] = item
        self._previous[item["id"]] = previous
        self._last_item_id = item["id"]
        return previous

    def item_done(self, item: dict[str, Any]) -> str | None:
        run = self.active
        if item["type"] == "function_call" and item["status"] == "completed":
            if run is not None and isinstance(run.plan, Call):
                self._calls[item["call_id"]] = run.plan
        elif item["type"] == "message" and run is not None and run.modality == "audio":
            self._audio_ms[item["id"]] = run.audio_format.ms(run.audio_bytes)
        return self._previous.get(item["id"])

    def response_finished(self, run: ResponseRun) -> None:
        if self.active is run:
            self.active = None
