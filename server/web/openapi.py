"""The OpenAPI document served at `/openapi.json`, built from the same pydantic model as the API."""

from __future__ import annotations

from typing import Any

from server.book.models import ReservationRequest
from server.web.messages_api import LISTING_SCHEMA
from server.web.openapi_calls import calls_paths
from server.web.openapi_parts import STAFF as _STAFF
from server.web.openapi_parts import STAFF_NOTE as _STAFF_NOTE
from server.web.openapi_parts import json_content as _json
from server.web.openapi_parts import staff_errors as _staff_errors
from server.web.openapi_restaurant import (
    CONFIRM,
    OVERRIDE,
    SLOT_UNAVAILABLE,
    restaurant_paths,
)

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
        "status": {
            "type": "string",
            "enum": ["confirmed", "requested", "cancelled"],
            "description": "requested: a party over max_party_size, for staff to confirm",
        },
        "tables": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "the tables it holds (availability rules with a table plan)",
        },
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
    props["override"] = OVERRIDE
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


def _conflict(other: str) -> dict[str, Any]:
    """409: the availability rules refuse the time (`slot_unavailable`, with the reason and
    the nearest times that would do), or `other`."""
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in ("SlotUnavailable", "Error")]
    return _json(
        {"anyOf": refs},
        "slot_unavailable: the availability rules refuse it (reason, alternatives); " + other,
    )


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
                    "action": {
                        "enum": [
                            "created",
                            "changed",
                            "cancelled",
                            "replaced",
                            "confirmed",
                            "declined",
                        ]
                    },
                    "at": {"type": "string", "format": "date-time"},
                    "source": {"enum": ["rest", "voice", "staff"]},
                    "call": {"type": ["string", "null"]},
                    "phone_number": {"type": "string"},
                    "before": {"type": ["object", "null"]},
                    "after": {"type": ["object", "null"]},
                    "override": {
                        "type": "boolean",
                        "description": "a staff booking past the availability rules",
                    },
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
                    "schema": {
                        "enum": ["confirmed", "requested", "cancelled", "all"],
                        "default": "confirmed",
                    },
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
            "requestBody": {
                "required": True,
                **_json(
                    {"anyOf": [_CHANGE, CONFIRM]},
                    'the fields to change, or {"status": "confirmed"} alone to confirm a request',
                ),
            },
            "responses": {
                "200": _json("Reservation", "the changed (or confirmed) booking"),
                "409": _conflict(
                    "reason party_too_large: the change would grow it past max_party_size"
                ),
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


def _messages_paths() -> dict[str, Any]:
    """The guests' texts (server/web/messages_api.py; docs/guest-messages.md)."""
    return {
        "/api/messages": {
            "get": {
                "summary": "Texts to a phone and/or about a day's bookings, newest first."
                + _STAFF_NOTE,
                "security": _STAFF,
                "parameters": [
                    {"name": "phone", "in": "query", "schema": {"type": "string"}},
                    {"name": "date", "in": "query", "schema": {"type": "string", "format": "date"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                ],
                "responses": {
                    "200": _json(LISTING_SCHEMA, "the texts (with phone: the guest's replies)"),
                    "422": _json("Error", "invalid parameters"),
                    **_staff_errors(),
                },
            }
        }
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
                    "summary": "Book a table (one upcoming reservation per phone number); a party "
                    "over max_party_size is a request (status requested) staff confirm",
                    "parameters": [
                        {
                            "name": "X-Source",
                            "in": "header",
                            "schema": {"enum": ["rest", "staff"]},
                            "description": "staff: a staff booking (staff credentials, no access "
                            "token), which may carry override",
                        }
                    ],
                    "requestBody": {"required": True, **_json("ReservationRequest", "booking")},
                    "responses": {
                        "201": _json("Reservation", "created"),
                        "200": _json("Reservation", "identical repeat: the existing booking"),
                        "400": _json(error, "body is not JSON"),
                        "403": _json(error, "override without X-Source: staff and its credentials"),
                        "409": _conflict(
                            "reservation_exists: the phone holds another upcoming reservation"
                        ),
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
            **restaurant_paths(),
            **calls_paths(),
            **_messages_paths(),
        },
        "components": {
            "securitySchemes": {"staffToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ReservationRequest": _request_schema(),
                "Reservation": _RESERVATION,
                "Error": _ERROR,
                "SlotUnavailable": SLOT_UNAVAILABLE,
            },
        },
    }
