"""The staff's REST: the book (list), a booking's history, change, cancel, and the live feed.

Staff confirm a request with `PATCH {"status": "confirmed"}` and decline it with `DELETE`.
Bookings carry an ETag (the `ETag` header of a change or cancellation, `"etag"` in list items
and in the feed's `before`/`after`); `PATCH` and `DELETE` honour `If-Match`, checked on the
locked row inside the writing transaction: a stale tag is 412 `booking_changed` with the
current booking, so a second staff member's save never silently overwrites the first's.

Every handler starts with `require_staff(request)` (the rule of `server.staff_auth`). Changes
here are recorded with source `rest`, or `staff` when the request says `X-Source: staff` (the
staff page does). The live feed is server-sent events (`GET /api/reservations/events`): one
`ready` event with the current position, then one `change` event per history row, each with the
row's seq as its `id:`; a client that reconnects with `Last-Event-ID` gets every row after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from server.access.staff_auth import staff_refusal
from server.book import reservations, restaurant
from server.book.etag import etag_of, with_etag
from server.book.live_feed import LiveFeed, Subscription
from server.book.models import RequestInvalid, parse_iso_date, validate_change
from server.book.reservations import HistoryEntry, Origin
from server.settings import Settings
from server.web.api import ApiError, JSONResponse, path_phone, read_json, slot_unavailable

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200
STATUSES = {
    "confirmed": "confirmed",
    "requested": "requested",
    "cancelled": "cancelled",
    "all": None,
}
SOURCES = ("rest", "staff")
FEED_PAGE = 500  # history rows read per query when a client resumes


def require_staff(request: Request) -> Settings:
    """The app's settings, once the request has shown it is staff's (else 401/403).

    Every staff route calls it first (the book here, the calls and /metrics in records/api.py).
    """
    settings: Settings = request.app.state.settings
    host = request.client.host if request.client else None
    refusal = staff_refusal(request.headers, host, settings)
    if refusal is not None:
        raise ApiError(refusal.status, refusal.code, refusal.message)
    return settings


def _origin(request: Request) -> Origin:
    source = request.headers.get("x-source", "rest").strip().lower()
    if source not in SOURCES:
        raise ApiError(
            422, "invalid_source", "X-Source must be rest or staff", {"X-Source": "rest or staff"}
        )
    return Origin(source)


# --- the book --------------------------------------------------------------------------------


async def list_reservations(request: Request) -> Response:
    settings = require_staff(request)
    query = request.query_params
    fields: dict[str, str] = {}
    day = None
    if "date" in query:
        try:
            day = parse_iso_date(query["date"])
        except ValueError as exc:
            fields["date"] = str(exc)
    status = query.get("status", "confirmed")
    if status not in STATUSES:
        fields["status"] = "must be confirmed, requested, cancelled or all"
    limit = LIST_LIMIT_DEFAULT
    raw_limit = query.get("limit")
    if raw_limit is not None:
        if raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= LIST_LIMIT_MAX:
            limit = int(raw_limit)
        else:
            fields["limit"] = f"must be a whole number from 1 to {LIST_LIMIT_MAX}"
    unknown = set(query) - {"date", "status", "limit", "cursor"}
    fields.update({name: "is not a known parameter" for name in sorted(unknown)})
    if fields:
        raise ApiError(422, "validation_failed", "some parameters are invalid", fields)
    pool = request.app.state.pool
    try:
        items, next_cursor = await reservations.list_reservations(
            pool,
            day=day,
            today=await restaurant.today(pool, settings),
            status=STATUSES[status],
            limit=limit,
            cursor=query.get("cursor") or None,
        )
    except reservations.InvalidCursor as exc:
        raise ApiError(422, "invalid_cursor", str(exc), {"cursor": str(exc)}) from None
    listed = [with_etag(item.to_json()) for item in items]
    return JSONResponse({"items": listed, "next_cursor": next_cursor})


async def reservation_history(request: Request) -> Response:
    settings = require_staff(request)
    phone = path_phone(request, settings)
    entries = await reservations.history(request.app.state.pool, phone)
    return JSONResponse({"items": [entry.to_json() for entry in entries]})


# --- change and cancel -----------------------------------------------------------------------


async def change_reservation(request: Request) -> Response:
    settings = require_staff(request)
    phone = path_phone(request, settings)
    origin = _origin(request)
    body = await read_json(request)
    if isinstance(body, dict) and "status" in body:
        return await _confirm_request(request, settings, phone, origin, body)
    pool = request.app.state.pool
    today = await restaurant.today(pool, settings)
    try:
        changes = validate_change(body, today=today)
    except RequestInvalid as exc:
        raise ApiError(422, "validation_failed", "some fields are invalid", exc.fields) from None
    try:
        result = await reservations.change(
            pool,
            phone,
            changes,
            today,
            origin,
            if_match=request.headers.get("if-match"),
        )
    except reservations.SlotUnavailable as refused:
        return slot_unavailable(refused)
    return _written(result, phone)


async def _confirm_request(
    request: Request, settings: Settings, phone: str, origin: Origin, body: dict[str, Any]
) -> Response:
    """`{"status": "confirmed"}`: staff accept a request (a party over the size limit)."""
    if body != {"status": "confirmed"}:
        fields = {"status": 'send {"status": "confirmed"} alone to confirm a request'}
        raise ApiError(422, "validation_failed", "some fields are invalid", fields)
    pool = request.app.state.pool
    result = await reservations.confirm(
        pool,
        phone,
        await restaurant.today(pool, settings),
        origin,
        if_match=request.headers.get("if-match"),
    )
    return _written(result, phone)


async def cancel_reservation(request: Request) -> Response:
    settings = require_staff(request)
    phone = path_phone(request, settings)
    origin = _origin(request)
    pool = request.app.state.pool
    result = await reservations.cancel(
        pool,
        phone,
        await restaurant.today(pool, settings),
        origin,
        if_match=request.headers.get("if-match"),
    )
    return _written(result, phone)


def _written(result: reservations.ChangeResult, phone: str) -> Response:
    """The booking after a change or cancellation, with its new ETag; 412 when If-Match was
    stale (with the current booking, for the page to show), 404 when there is none."""
    if result.reservation is None:
        raise ApiError(404, "reservation_not_found", f"no upcoming reservation for {phone}")
    booking = result.reservation.to_json()
    if result.outcome == "stale":
        raise ApiError(
            412,
            "booking_changed",
            "the booking was changed since it was read; here it is as it is now",
            current=with_etag(booking),
        )
    return JSONResponse(booking, headers={"ETag": etag_of(booking)})


# --- the live feed ---------------------------------------------------------------------------


def _event(kind: str, seq: int, data: Any) -> bytes:
    return b"event: %s\nid: %d\ndata: %s\n\n" % (kind.encode(), seq, orjson.dumps(data))


def _change_event(entry: HistoryEntry) -> bytes:
    """A history row, each side with its ETag: an open page keeps editing the current version."""
    data = entry.to_json()
    for side in ("before", "after"):
        if data[side] is not None:
            data[side] = with_etag(data[side])
    return _event("change", entry.seq, data)


async def reservation_events(request: Request) -> Response:
    settings = require_staff(request)
    pool = request.app.state.pool
    feed: LiveFeed = request.app.state.live_feed
    raw = request.headers.get("last-event-id")
    resume_from: int | None = None
    if raw is not None:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise ApiError(
                422,
                "invalid_last_event_id",
                "Last-Event-ID must be the id of an event this feed sent",
                {"Last-Event-ID": "must be a whole number"},
            )
        resume_from = int(raw)

    # Subscribe before reading the table: a row committed in between is then in both, and the
    # duplicate is skipped by seq; subscribing after could lose it.
    subscription = feed.subscribe()
    try:
        zone = await restaurant.timezone(pool, settings)
        if resume_from is None:
            sent = await reservations.latest_seq(pool)
            backlog: list[HistoryEntry] = []
        else:
            sent = resume_from
            backlog = await reservations.changes_after(pool, resume_from, FEED_PAGE)
    except BaseException:
        feed.unsubscribe(subscription)
        raise
    ready = {
        "resumed": resume_from is not None,
        "today": dt.datetime.now(ZoneInfo(zone)).date().isoformat(),
        "timezone": zone,  # the profile's: the page shows times in it
    }
    first = _event("ready", sent, ready)
    stream = _stream(request, settings, subscription, first, backlog, sent)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request,
    settings: Settings,
    subscription: Subscription,
    first: bytes,
    backlog: list[HistoryEntry],
    sent: int,
) -> AsyncIterator[bytes]:
    """The response body: `ready`, what was missed (a page at a time, while live rows wait in
    the queue), then live rows, with keep-alive comments in the quiet moments."""
    pool = request.app.state.pool
    feed: LiveFeed = request.app.state.live_feed
    try:
        yield first
        while backlog:
            for entry in backlog:
                yield _change_event(entry)
                sent = entry.seq
            if len(backlog) < FEED_PAGE:
                break
            try:
                backlog = await reservations.changes_after(pool, sent, FEED_PAGE)
            except reservations.DatabaseUnavailable:
                return  # the client reconnects with its Last-Event-ID
        while not subscription.ended:
            try:
                queued = await asyncio.wait_for(
                    subscription.queue.get(), settings.staff_feed_keepalive_s
                )
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if queued is None:
                break
            if queued.seq > sent:
                yield _change_event(queued)
                sent = queued.seq
    finally:
        feed.unsubscribe(subscription)


routes = [
    Route("/api/reservations", list_reservations, methods=["GET"]),
    Route("/api/reservations/events", reservation_events, methods=["GET"]),
    Route("/api/reservations/{phone_number:anytext}/history", reservation_history, methods=["GET"]),
    Route("/api/reservations/{phone_number:anytext}", change_reservation, methods=["PATCH"]),
    Route("/api/reservations/{phone_number:anytext}", cancel_reservation, methods=["DELETE"]),
]
