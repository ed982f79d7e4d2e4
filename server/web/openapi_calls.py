"""The OpenAPI of the call records (server/records/api.py)."""

from __future__ import annotations

from typing import Any

from server.web.openapi_parts import STAFF, STAFF_NOTE, json_content, staff_errors

_CALL: dict[str, Any] = {
    "type": "object",
    "required": ["id", "channel", "status", "started_at", "outcome", "cost_usd"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "channel": {"type": "string"},
        "caller": {"type": ["string", "null"]},
        "status": {"enum": ["live", "ended", "interrupted"]},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": ["string", "null"]},
        "duration_s": {"type": ["number", "null"]},
        "end_reason": {"type": ["string", "null"]},
        "outcome": {"enum": ["booked", "changed", "cancelled", "looked_up", "none", "failed"]},
        "confirmation_number": {"type": ["string", "null"]},
        "cost_usd": {"type": "number"},
        "transcript": {"type": ["array", "null"]},
    },
}


def calls_paths() -> dict[str, Any]:
    """The call records (server/records/api.py)."""
    return {
        "/api/calls": {
            "get": {
                "summary": "A day's calls (restaurant time), newest first, keyset-paginated."
                + STAFF_NOTE,
                "security": STAFF,
                "parameters": [
                    {"name": "date", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": json_content(
                        {
                            "type": "object",
                            "required": ["date", "items", "next_cursor"],
                            "properties": {
                                "date": {"type": "string", "format": "date"},
                                "items": {"type": "array", "items": _CALL},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "one page; next_cursor null at the end",
                    ),
                    "422": json_content("Error", "invalid parameters or cursor"),
                    **staff_errors(),
                },
            }
        },
        "/api/calls/{call_id}": {
            "get": {
                "summary": "One call with its tool calls and transcript." + STAFF_NOTE,
                "security": STAFF,
                "parameters": [
                    {
                        "name": "call_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": json_content(_CALL, "the call"),
                    "404": json_content("Error", "no such call"),
                    **staff_errors(),
                },
            }
        },
    }
