"""The OpenAPI document served at `/openapi.json`, built from the same pydantic model as the API."""

from __future__ import annotations

from typing import Any

from server.book.models import ReservationRequest

_RESERVATION = {
    "type": "object",
    "required": [
        "phone_number",
        "name",
        "reservation_date",
        "reservation_time",
        "party_size",
        "other_info",
        "confirmation_number",
        "status",
        "created_at",
        "updated_at",
    ],
    "properties": {
        "phone_number": {"type": "string", "description": "E.164", "example": "+6598207272"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "reservation_date": {"type": "string", "format": "date"},
        "reservation_time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "party_size": {"type": "integer", "minimum": 1, "maximum": 20},
        "other_info": {"type": "object"},
        "confirmation_number": {"type": "string", "pattern": "^[2-9A-HJKMNP-Z]{6}$"},
        "status": {"type": "string", "enum": ["confirmed", "cancelled"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def _request_schema() -> dict[str, Any]:
    schema = ReservationRequest.model_json_schema()
    props = schema["properties"]
    props["reservation_date"] = {"type": "string", "format": "date", "example": "2026-12-24"}
    props["reservation_time"] = {
        "type": "string",
        "pattern": "^[0-2][0-9]:[0-5][0-9]$",
        "example": "19:30",
    }
    props["phone_number"]["description"] = "any common format; stored as E.164"
    schema.pop("title", None)
    return schema


_CHANGE = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "reservation_date": {"type": "string", "format": "date"},
        "reservation_time": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "party_size": {"type": "integer", "minimum": 1, "maximum": 20},
        "other_info": {"type": "object"},
    },
}

_PAGE = {
    "type": "object",
    "required": ["items", "next_cursor"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Reservation"}},
        "next_cursor": {"type": ["string", "null"]},
    },
}

_HISTORY = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "action", "at", "source", "call", "before", "after"],
                "properties": {
                    "id": {"type": "integer", "description": "the live feed's event id"},
                    "action": {"enum": ["created", "changed", "cancelled", "replaced"]},
                    "at": {"type": "string", "format": "date-time"},
                    "source": {"enum": ["rest", "voice", "staff"]},
                    "call": {"type": ["string", "null"]},
                    "phone_number": {"type": "string"},
                    "before": {"type": ["object", "null"]},
                    "after": {"type": ["object", "null"]},
                },
            },
        }
    },
}

_PHONE_PARAM = {
    "name": "phone_number",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_STAFF: list[dict[str, list[str]]] = [{"staffToken": []}]
_STAFF_NOTE = (
    " Staff only: Authorization: Bearer <STAFF_TOKEN> when STAFF_TOKEN is set, else loopback."
)


def _json(schema: dict[str, Any] | str, description: str) -> dict[str, Any]:
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _staff_errors() -> dict[str, Any]:
    return {
        "401": _json("Error", "STAFF_TOKEN is set and was not sent"),
        "403": _json("Error", "STAFF_TOKEN is unset and the client is not on this machine"),
        "503": _json("Error", "database unavailable"),
    }


def _staff_paths() -> dict[str, Any]:
    phone = [_PHONE_PARAM]
    source = {
        "name": "X-Source",
        "in": "header",
        "schema": {"enum": ["rest", "staff"]},
        "description": "recorded in the history (the staff page sends staff)",
    }
    if_match = {
        "name": "If-Match",
        "in": "header",
        "schema": {"type": "string"},
        "description": "the booking's ETag as read (list items' etag, GET's ETag header): a "
        "booking changed since answers 412 booking_changed with error.current",
    }
    stale = _json("Error", "If-Match is stale: error.current is the booking as it is now")
    return {
        "list": {
            "summary": "The book: bookings by date and time, keyset-paginated." + _STAFF_NOTE,
            "security": _STAFF,
            "parameters": [
                {"name": "date", "in": "query", "schema": {"type": "string", "format": "date"}},
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"enum": ["confirmed", "cancelled", "all"], "default": "confirmed"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json(_PAGE, "one page; next_cursor null at the end"),
                "422": _json("Error", "invalid parameters or cursor"),
                **_staff_errors(),
            },
        },
        "patch": {
            "summary": "Change the phone's upcoming booking (same confirmation number)."
            + _STAFF_NOTE,
            "security": _STAFF,
            "parameters": [*phone, source, if_match],
            "requestBody": {"required": True, **_json(_CHANGE, "the fields to change")},
            "responses": {
                "200": _json("Reservation", "the changed booking"),
                "412": stale,
                "400": _json("Error", "body is not JSON"),
                "404": _json("Error", "no upcoming booking"),
                "413": _json("Error", "body over 16 KB"),
                "422": _json("Error", "invalid fields"),
                **_staff_errors(),
            },
        },
        "delete": {
            "summary": "Cancel the phone's upcoming booking." + _STAFF_NOTE,
            "security": _STAFF,
            "parameters": [*phone, source, if_match],
            "responses": {
                "200": _json("Reservation", "the cancelled booking (status cancelled)"),
                "412": stale,
                "404": _json("Error", "no upcoming booking"),
                "422": _json("Error", "not a valid phone number"),
                **_staff_errors(),
            },
        },
        "history": {
            "summary": "Everything that happened to the phone's bookings, oldest first."
            + _STAFF_NOTE,
            "security": _STAFF,
            "parameters": phone,
            "responses": {
                "200": _json(_HISTORY, "the history"),
                "422": _json("Error", "not a valid phone number"),
                **_staff_errors(),
            },
        },
        "events": {
            "summary": "The live feed (server-sent events): `ready`, then one `change` per "
            "history row, `id:` its seq; send Last-Event-ID to resume." + _STAFF_NOTE,
            "security": _STAFF,
            "parameters": [{"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "text/event-stream"},
                "422": _json("Error", "Last-Event-ID is not a number"),
                **_staff_errors(),
            },
        },
    }


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


def _calls_paths() -> dict[str, Any]:
    """The call records (server/records/api.py)."""
    return {
        "/api/calls": {
            "get": {
                "summary": "A day's calls (restaurant time), newest first, keyset-paginated."
                + _STAFF_NOTE,
                "security": _STAFF,
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
                    "200": _json(
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
                    "422": _json("Error", "invalid parameters or cursor"),
                    **_staff_errors(),
                },
            }
        },
        "/api/calls/{call_id}": {
            "get": {
                "summary": "One call with its tool calls and transcript." + _STAFF_NOTE,
                "security": _STAFF,
                "parameters": [
                    {
                        "name": "call_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": _json(_CALL, "the call"),
                    "404": _json("Error", "no such call"),
                    **_staff_errors(),
                },
            }
        },
    }


def build_openapi() -> dict[str, Any]:
    error = "Error"
    staff = _staff_paths()
    return {
        "openapi": "3.1.0",
        "info": {"title": "Restaurant reservations", "version": "1.0.0"},
        "paths": {
            "/api/reservations": {
                "post": {
                    "summary": "Book a table (one upcoming reservation per phone number)",
                    "requestBody": {"required": True, **_json("ReservationRequest", "booking")},
                    "responses": {
                        "201": _json("Reservation", "created"),
                        "200": _json("Reservation", "identical repeat: the existing booking"),
                        "400": _json(error, "body is not JSON"),
                        "409": _json(error, "the phone holds another upcoming reservation"),
                        "413": _json(error, "body over 16 KB"),
                        "422": _json(error, "invalid fields"),
                        "503": _json(error, "database unavailable"),
                    },
                },
                "get": staff["list"],
            },
            "/api/reservations/events": {"get": staff["events"]},
            "/api/reservations/{phone_number}/history": {"get": staff["history"]},
            "/api/reservations/{phone_number}": {
                "get": {
                    "summary": "The reservation held by a phone number",
                    "parameters": [
                        {
                            "name": "phone_number",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json("Reservation", "found"),
                        "404": _json(error, "no reservation"),
                        "422": _json(error, "not a valid phone number"),
                        "503": _json(error, "database unavailable"),
                    },
                },
                "patch": staff["patch"],
                "delete": staff["delete"],
            },
            **_calls_paths(),
        },
        "components": {
            "securitySchemes": {"staffToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ReservationRequest": _request_schema(),
                "Reservation": _RESERVATION,
                "Error": _ERROR,
            },
        },
    }
