"""The OpenAPI of the restaurant's profile and availability (server/web/restaurant_api.py), and
the availability rules' answers the booking routes give (409 `slot_unavailable`).

Written by hand from what the handlers and `server.book.restaurant` really accept: the profile's
cross-field rules (windows on the slot grid, combinations of known tables...) cannot be said in
JSON Schema and are refused with 422 naming the field.
"""

from __future__ import annotations

from typing import Any

from server.book.availability import REASONS
from server.book.restaurant import MAX_PARTY, PUBLIC_KEYS, WEEKDAYS
from server.web.openapi_parts import STAFF, STAFF_NOTE, json_content, staff_errors

HH_MM = {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "example": "19:30"}
DATE = {"type": "string", "format": "date", "example": "2026-12-24"}
REASON = {"enum": list(REASONS)}
ALTERNATIVES = {
    "type": "array",
    "maxItems": 3,
    "items": {
        "type": "object",
        "required": ["date", "time"],
        "properties": {"date": DATE, "time": HH_MM},
    },
}


def _count(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


_WINDOW = {
    "type": "array",
    "description": "[first arrival, last arrival], both included, on the slot grid",
    "items": HH_MM,
    "minItems": 2,
    "maxItems": 2,
}
_TABLE = {
    "type": "object",
    "required": ["name", "seats"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 40},
        "seats": _count(1, MAX_PARTY),
        "min_party": _count(1, MAX_PARTY),
    },
}
_CLOSURE = {
    "type": "object",
    "required": ["from", "to"],
    "additionalProperties": False,
    "properties": {
        "from": DATE,
        "to": DATE,
        "reason": {"type": "string", "maxLength": 200},
    },
}
PROFILE_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "availability": {
        "enum": ["always", "rules"],
        "description": "always: every future date and time may be booked (the default); "
        "rules: the keys below are enforced",
    },
    "timezone": {
        "type": "string",
        "example": "Asia/Singapore",
        "description": 'an IANA timezone: where "today", the hours and lead times are judged',
    },
    "slot_minutes": {**_count(5, 120), "description": "must divide a day"},
    "hours": {
        "type": "object",
        "description": "per weekday, the arrival windows; [] or a missing day: closed",
        "additionalProperties": False,
        "properties": {day: {"type": "array", "items": _WINDOW} for day in WEEKDAYS},
    },
    "closures": {"type": "array", "maxItems": 200, "items": _CLOSURE},
    "covers_per_slot": {
        "anyOf": [_count(1, 10_000), {"type": "null"}],
        "description": "guests arriving in one slot at most; null: no limit",
    },
    "dining_minutes": {
        "type": "object",
        "description": "how long a party of up to N (the key, 1 to 20) holds its table",
        "minProperties": 1,
        "propertyNames": {"pattern": "^[0-9]{1,2}$"},
        "additionalProperties": _count(15, 24 * 60),
    },
    "tables": {"type": "array", "maxItems": 200, "items": _TABLE},
    "combinations": {
        "type": "array",
        "maxItems": 200,
        "items": {"type": "array", "minItems": 2, "items": {"type": "string"}},
    },
    "max_party_size": {
        **_count(1, MAX_PARTY),
        "description": "larger parties become requests that staff confirm",
    },
    "min_lead_minutes": _count(0, 60 * 24 * 30),
    "max_days_ahead": _count(0, 3650),
}

# What GET answers (staff get every key, anyone else the public ones) and PUT takes (any keys).
PROFILE = {
    "type": "object",
    "required": list(PUBLIC_KEYS),
    "properties": PROFILE_PROPERTIES,
}
PROFILE_CHANGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": PROFILE_PROPERTIES,
}

# POST /api/reservations: staff book past the rules.
OVERRIDE = {
    "type": "boolean",
    "default": False,
    "description": "true: book past the availability rules (staff bookings only: X-Source: "
    "staff with the staff credentials, else 403); recorded in the history",
}
# PATCH's other body: staff confirm a request (a party over max_party_size), alone.
CONFIRM = {
    "type": "object",
    "required": ["status"],
    "additionalProperties": False,
    "properties": {"status": {"const": "confirmed"}},
}

# 409 when the availability rules refuse a booking (or a change of its date, time or party).
SLOT_UNAVAILABLE = {
    "type": "object",
    "required": ["error", "reason", "alternatives"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields", "reason", "alternatives"],
            "properties": {
                "code": {"const": "slot_unavailable"},
                "message": {"type": "string"},
                "fields": {"type": "object"},
                "reason": REASON,
                "alternatives": ALTERNATIVES,
            },
        },
        "reason": REASON,
        "alternatives": ALTERNATIVES,
    },
}

_DECISION = {
    "type": "object",
    "required": ["available", "reason", "alternatives"],
    "properties": {
        "available": {"type": "boolean"},
        "reason": {"anyOf": [REASON, {"type": "null"}]},
        "alternatives": ALTERNATIVES,
    },
}
_DAY = {
    "type": "object",
    "required": ["date", "party_size", "availability", "open", "reason", "slots"],
    "properties": {
        "date": DATE,
        "party_size": _count(1, MAX_PARTY),
        "availability": {"enum": ["always", "rules"]},
        "open": {"type": "boolean"},
        "reason": {"type": ["string", "null"], "description": "why the day is not open"},
        "slots": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["time", "available", "reason"],
                "properties": {
                    "time": HH_MM,
                    "available": {"type": "boolean"},
                    "reason": {"anyOf": [REASON, {"type": "null"}]},
                },
            },
        },
    },
}


_CONFLICT = {
    "allOf": [
        {"$ref": "#/components/schemas/Reservation"},
        {"required": ["reason"], "properties": {"reason": REASON}},
    ]
}


def _param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": True, "schema": schema}


def restaurant_paths() -> dict[str, Any]:
    """The routes of restaurant_api.py."""
    json, staff, staff_note = json_content, STAFF, STAFF_NOTE
    invalid = json("Error", "invalid or unknown parameters, each named in error.fields")
    no_token = json("Error", "ACCESS_TOKEN is set and was not sent")
    party = _param("party_size", _count(1, MAX_PARTY))
    return {
        "/api/restaurant": {
            "get": {
                "summary": "The restaurant's profile: what a caller may know (name, timezone, "
                "hours, closures, largest party, whether rules apply, slot length); staff get "
                "every key.",
                "security": [{}, *staff],
                "responses": {
                    "200": json(PROFILE, "the profile"),
                    "401": no_token,
                    "503": json("Error", "database unavailable"),
                },
            },
            "put": {
                "summary": "Change the profile: every key optional, each given replaces the "
                "stored one whole; answers the whole profile. Bookings the new rules would "
                "refuse stay (see /api/restaurant/conflicts)." + staff_note,
                "security": staff,
                "requestBody": {"required": True, **json(PROFILE_CHANGE, "the keys to change")},
                "responses": {
                    "200": json(PROFILE, "the whole profile as stored now"),
                    "400": json("Error", "body is not JSON"),
                    "413": json("Error", "body over 16 KB"),
                    "422": json("Error", "invalid or unknown keys, each named in error.fields"),
                    **staff_errors(),
                },
            },
        },
        "/api/restaurant/conflicts": {
            "get": {
                "summary": "Upcoming bookings and requests the current rules would refuse, each "
                "with its reason." + staff_note,
                "security": staff,
                "responses": {
                    "200": json(
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "items": _CONFLICT,
                                }
                            },
                        },
                        "the conflicts, oldest booking first",
                    ),
                    **staff_errors(),
                },
            }
        },
        "/api/availability": {
            "get": {
                "summary": "A day's arrival slots for a party, each with its answer (under "
                "`always`: every slot of the day, available unless past).",
                "parameters": [_param("date", DATE), party],
                "responses": {
                    "200": json(_DAY, "the day"),
                    "401": no_token,
                    "422": invalid,
                    "503": json("Error", "database unavailable"),
                },
            }
        },
        "/api/availability/check": {
            "get": {
                "summary": "May this time be booked? As the model's check_availability answers: "
                "why not, and up to three nearest times that would do.",
                "parameters": [_param("date", DATE), _param("time", HH_MM), party],
                "responses": {
                    "200": json(_DECISION, "the answer"),
                    "401": no_token,
                    "422": invalid,
                    "503": json("Error", "database unavailable"),
                },
            }
        },
    }
