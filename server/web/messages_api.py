"""`GET /api/messages?phone=&date=`: the texts sent (or not) to guests, for the staff.

Staff only (`require_staff`). Each text's kind, status, attempts, body, error and times; with
`phone`, that guest's replies too (other than STOP/START/HELP). `date` picks the texts about
bookings on that day. Newest first, at most `limit` (default 50, at most 200).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.book import outbox
from server.book.models import InvalidPhoneNumber, normalize_phone, parse_iso_date
from server.web.api import ApiError, JSONResponse
from server.web.staff_api import require_staff

# The answer's shape, for /openapi.json (server/web/openapi.py).
MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["id", "kind", "status", "attempts", "body", "error", "due_at", "sent_at"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {
            "type": "string",
            "enum": ["confirmation", "change", "cancellation", "request", "reminder"],
        },
        "event": {"type": "string"},
        "phone_number": {"type": "string"},
        "confirmation_number": {"type": ["string", "null"]},
        "reservation_date": {"type": ["string", "null"]},
        "remind_before_s": {"type": ["integer", "null"]},
        "status": {
            "type": "string",
            "enum": [
                "pending",
                "sending",
                "sent",
                "delivered",
                "failed",
                "skipped_opted_out",
                "skipped_not_configured",
                "dropped",
            ],
        },
        "attempts": {"type": "integer", "minimum": 0},
        "body": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
        "twilio_sid": {"type": ["string", "null"]},
        "due_at": {"type": "string", "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "sent_at": {"type": ["string", "null"], "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
REPLY_SCHEMA = {
    "type": "object",
    "required": ["body", "received_at"],
    "properties": {
        "body": {"type": "string"},
        "received_at": {"type": "string", "format": "date-time"},
    },
}
LISTING_SCHEMA = {
    "type": "object",
    "required": ["items", "replies", "configured"],
    "properties": {
        "items": {"type": "array", "items": MESSAGE_SCHEMA},
        "replies": {"type": "array", "items": REPLY_SCHEMA},
        "configured": {"type": "boolean"},
    },
}

LIMIT_DEFAULT = 50
LIMIT_MAX = 200


async def list_messages(request: Request) -> Response:
    settings = require_staff(request)
    query = request.query_params
    fields: dict[str, str] = {}
    phone = day = None
    if query.get("phone"):
        try:
            phone = normalize_phone(query["phone"], settings.default_region)
        except InvalidPhoneNumber as exc:
            fields["phone"] = str(exc)
    if query.get("date"):
        try:
            day = parse_iso_date(query["date"])
        except ValueError as exc:
            fields["date"] = str(exc)
    limit = LIMIT_DEFAULT
    raw = query.get("limit")
    if raw is not None:
        if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= LIMIT_MAX:
            limit = int(raw)
        else:
            fields["limit"] = f"must be a whole number from 1 to {LIMIT_MAX}"
    unknown = set(query) - {"phone", "date", "limit"}
    fields.update({name: "is not a known parameter" for name in sorted(unknown)})
    if fields:
        raise ApiError(422, "validation_failed", "some parameters are invalid", fields)
    pool = request.app.state.pool
    items = await outbox.list_messages(pool, phone, day, limit)
    replies = await outbox.list_replies(pool, phone, limit) if phone else []
    return JSONResponse(
        {
            "items": [item.to_json() for item in items],
            "replies": replies,
            "configured": settings.sms_configured,
        }
    )


routes = [Route("/api/messages", list_messages, methods=["GET"])]
