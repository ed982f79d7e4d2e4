"""The OpenAPI document served at `/openapi.json`, built from the same pydantic model as the API."""

from __future__ import annotations

from typing import Any

from server.models import ReservationRequest

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


def _json(schema: dict[str, Any] | str, description: str) -> dict[str, Any]:
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_openapi() -> dict[str, Any]:
    error = "Error"
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
                }
            },
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
                }
            },
        },
        "components": {
            "schemas": {
                "ReservationRequest": _request_schema(),
                "Reservation": _RESERVATION,
                "Error": _ERROR,
            }
        },
    }
