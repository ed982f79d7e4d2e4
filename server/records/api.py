"""Staff endpoints of the call records and the metrics: `GET /api/calls`, `GET /api/calls/{id}`,
`GET /metrics`. Every one is behind the staff rule (`_staff`): the records hold callers' numbers
and what they said, and the metrics say how busy the restaurant is.
"""

from __future__ import annotations

import datetime as dt
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.records import store
from server.records.metrics import CONTENT_TYPE
from server.settings import Settings
from server.web.api import ApiError, JSONResponse
from server.web.staff_api import require_staff

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200
READ_TIMEOUT_S = 5.0


def _timeout(settings: Settings) -> float:
    return min(settings.db_command_timeout_s, READ_TIMEOUT_S)


async def list_calls(request: Request) -> Response:
    settings = require_staff(request)
    query = request.query_params
    fields: dict[str, str] = {}
    day = settings.today()
    if "date" in query:
        try:
            day = dt.date.fromisoformat(query["date"])
        except ValueError:
            fields["date"] = "must be a date as YYYY-MM-DD"
        else:
            if not dt.date.min < day < dt.date.max:  # its bounds would overflow
                fields["date"] = "must be a date between 0002-01-01 and 9999-12-30"
    limit = LIST_LIMIT_DEFAULT
    raw_limit = query.get("limit")
    if raw_limit is not None:
        if raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= LIST_LIMIT_MAX:
            limit = int(raw_limit)
        else:
            fields["limit"] = f"must be a whole number from 1 to {LIST_LIMIT_MAX}"
    unknown = set(query) - {"date", "limit", "cursor"}
    fields.update({name: "is not a known parameter" for name in sorted(unknown)})
    if fields:
        raise ApiError(422, "validation_failed", "some parameters are invalid", fields)
    try:
        items, next_cursor = await store.list_calls(
            request.app.state.pool,
            day=day,
            zone=settings.timezone,
            limit=limit,
            cursor=query.get("cursor") or None,
            timeout_s=_timeout(settings),
        )
    except store.InvalidCursor as exc:
        raise ApiError(422, "invalid_cursor", str(exc), {"cursor": str(exc)}) from None
    return JSONResponse(
        {
            "date": day.isoformat(),
            "items": [item.to_json() for item in items],
            "next_cursor": next_cursor,
        }
    )


async def get_call(request: Request) -> Response:
    settings = require_staff(request)
    raw = request.path_params["call_id"]
    try:
        call_id = uuid.UUID(raw)
    except ValueError:
        raise ApiError(404, "call_not_found", "no call with that id") from None
    record = await store.get_call(request.app.state.pool, call_id, _timeout(settings))
    if record is None:
        raise ApiError(404, "call_not_found", "no call with that id")
    return JSONResponse(record.to_json())


async def metrics(request: Request) -> Response:
    require_staff(request)
    body = request.app.state.metrics.render() if request.app.state.metrics else b""
    return Response(body, media_type=CONTENT_TYPE)


async def budget(request: Request) -> Response:
    """Today's spending against MODEL_DAILY_BUDGET_USD (all processes), for the staff page."""
    settings = require_staff(request)
    current = request.app.state.budget
    if current is None:
        return JSONResponse(
            {
                "budget_usd": None,
                "spent_usd": None,
                "exhausted": False,
                "day": str(settings.today()),
            }
        )
    return JSONResponse(current.as_json())


routes = [
    Route("/api/budget", budget, methods=["GET"]),
    Route("/api/calls", list_calls, methods=["GET"]),
    Route("/api/calls/{call_id}", get_call, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
