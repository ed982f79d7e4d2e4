"""REST: parse the request, apply the shared rules in `reservations`, answer JSON.

Every refusal is `{"error": {"code", "message", "fields"}}` with a specific status; bad input is
never a 500. Bodies are read with a hard cap so a huge upload costs us at most 16 KB.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from server.access import credentials
from server.access.staff_auth import staff_refusal
from server.book import reservations, restaurant
from server.book.etag import etag_of
from server.book.models import InvalidPhoneNumber, RequestInvalid, normalize_phone, validate_request
from server.book.reservations import REST, Origin, SlotUnavailable
from server.settings import Settings

MAX_BODY_BYTES = 16 * 1024


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An answer that is not a success; raised anywhere in a handler, rendered once."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {"code": self.code, "message": self.message, "fields": self.fields, **self.extra}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse({"error": body}, status_code=self.status, headers=headers)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return ApiError(status, code, message).response()


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The body as JSON, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"request body must be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body_too_large", f"request body must be at most {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the request body was not received") from None
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "request body must be valid JSON") from None


def caller_settings(request: Request) -> Settings:
    """The app's settings, once the caller has shown the access token (when one is set)."""
    settings: Settings = request.app.state.settings
    if not credentials.token_ok(credentials.bearer(request.headers), settings):
        raise ApiError(401, "unauthorized", "a valid access token is required (Authorization)")
    return settings


def _booker(request: Request) -> tuple[Settings, bool]:
    """The settings, and whether staff book (`X-Source: staff` passing the staff rule, who need
    no access token); anyone else needs the access token, as before."""
    settings: Settings = request.app.state.settings
    if request.headers.get("x-source", "").strip().lower() == "staff":
        host = request.client.host if request.client else None
        if staff_refusal(request.headers, host, settings) is None:
            return settings, True
    return caller_settings(request), False


def _override(body: Any, staff: bool) -> bool:
    """`"override": true` books past the availability rules: staff bookings only."""
    override = body.pop("override", False) if isinstance(body, dict) else False
    if not isinstance(override, bool):
        fields = {"override": "must be true or false"}
        raise ApiError(422, "validation_failed", "some fields are invalid", fields)
    if override and not staff:
        message = "override is for staff bookings: X-Source: staff with the staff credentials"
        raise ApiError(403, "override_forbidden", message, {"override": message})
    return override


def slot_unavailable(refused: SlotUnavailable) -> JSONResponse:
    """409 for a booking the availability rules refuse: why, and the nearest times that would do
    (inside `error` as every refusal, and beside it for clients that read them there)."""
    decision = refused.decision.to_json()
    message = f"that time cannot be booked: {refused.decision.reason}"
    error = {"code": "slot_unavailable", "message": message, "fields": {}, **decision}
    del error["available"]
    body = {"error": error, "reason": error["reason"], "alternatives": error["alternatives"]}
    return JSONResponse(body, status_code=409)


async def create_reservation(request: Request) -> Response:
    settings, staff = _booker(request)
    body = await read_json(request)
    override = _override(body, staff)
    origin = Origin("staff", override=override) if staff else REST
    pool = request.app.state.pool
    today = await restaurant.today(pool, settings)
    try:
        booking = validate_request(body, region=settings.default_region, today=today)
    except RequestInvalid as exc:
        raise ApiError(422, "validation_failed", "some fields are invalid", exc.fields) from None
    try:
        result = await reservations.book(pool, booking, today, origin)
    except SlotUnavailable as refused:
        return slot_unavailable(refused)
    held = result.reservation
    if result.outcome == "conflict":
        raise ApiError(
            409,
            "reservation_exists",
            f"{booking.phone_number} already holds a reservation on "
            f"{held.reservation_date.isoformat()} at {held.reservation_time:%H:%M}",
            existing={
                "reservation_date": held.reservation_date.isoformat(),
                "reservation_time": f"{held.reservation_time:%H:%M}",
            },
        )
    status = 201 if result.outcome == "created" else 200
    return JSONResponse(held.to_json(), status_code=status)


def path_phone(request: Request, settings: Settings) -> str:
    """The path's `{phone_number}` in E.164, or a 422 saying why it is not a number."""
    try:
        return normalize_phone(request.path_params["phone_number"], settings.default_region)
    except InvalidPhoneNumber as exc:
        raise ApiError(422, "invalid_phone_number", str(exc), {"phone_number": str(exc)}) from None


async def get_reservation(request: Request) -> Response:
    settings = caller_settings(request)
    phone = path_phone(request, settings)
    found = await reservations.find(request.app.state.pool, phone)
    if found is None:
        raise ApiError(404, "reservation_not_found", f"no reservation for {phone}")
    booking = found.to_json()
    return JSONResponse(booking, headers={"ETag": etag_of(booking)})


async def health(request: Request) -> Response:
    await reservations.ping(request.app.state.pool)
    return JSONResponse({"status": "ok"})


class _AnyText(PathConvertor):
    """Like `path`, newlines included: `/api/reservations/1%0A2` is a bad number (422), not an
    unknown route (404 not_found) as it is with `path`, whose `.*` stops at a newline."""

    regex = "(?s:.*)"


register_url_convertor("anytext", _AnyText())

routes = [
    Route("/api/reservations", create_reservation, methods=["POST"]),
    Route("/api/reservations/{phone_number:anytext}", get_reservation, methods=["GET"]),
    Route("/healthz", health, methods=["GET"]),
]
