"""The guest's manage page, `/r/<token>`: the booking, and buttons to cancel or change it.

The link comes in every text (`server.access.manage_links` makes and checks the token). The page
is plain HTML rendered here, with forms posting back to the same address: no script at all, so
the strict Content-Security-Policy of every page holds, and it works on any phone. A token that
is malformed, forged, for a replaced booking, or for a booking already past gets the same 404
page, which says nothing about why. Changes are recorded in the history with source `guest`.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from server.access import manage_links
from server.book import reservations
from server.book.models import RequestInvalid, validate_change
from server.book.reservations import Origin, Reservation
from server.settings import Settings

GUEST = Origin("guest")
MAX_FORM_BYTES = 2048
HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>{title}</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/manage/manage.css">
</head>
<body>
<main class="card">
{content}
</main>
</body>
</html>
"""

NOT_FOUND = """<h1>This link does not work</h1>
<p>It may be mistyped, or the booking it was for is over. Please call the restaurant.</p>"""


def _page(title: str, content: str, status: int = 200) -> HTMLResponse:
    body = PAGE.format(title=html.escape(title), content=content)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _not_found() -> HTMLResponse:
    return _page("Link not found", NOT_FOUND, 404)


async def _booking(request: Request, settings: Settings) -> tuple[str, Reservation] | None:
    """The token and the booking it opens, or None (every reason looks the same outside)."""
    token = request.path_params["token"]
    reservation_id = manage_links.reservation_id(token)
    if reservation_id is None:
        return None
    booking = await reservations.find_by_id(request.app.state.pool, reservation_id)
    key: bytes = request.app.state.manage_key
    if booking is None or not manage_links.matches(
        key, token, booking.id, booking.confirmation_number
    ):
        return None
    if booking.reservation_date < settings.today():
        return None  # expired: the booking is over
    return token, booking


def _render(settings: Settings, token: str, booking: Reservation, note: str = "") -> str:
    e = html.escape
    day = booking.reservation_date
    when = f"{day:%A} {day.day} {day:%B %Y} at {booking.reservation_time:%H:%M}"
    action = f"/r/{e(token)}"
    parts = [
        f"<p class='restaurant'>{e(settings.restaurant_name)}</p>",
        f"<h1>Table for {booking.party_size}</h1>",
        f"<p class='when'>{e(when)}</p>",
        "<dl>",
        f"<dt>Name</dt><dd>{e(booking.name)}</dd>",
        f"<dt>Confirmation</dt><dd class='code'>{e(booking.confirmation_number)}</dd>",
        f"<dt>Status</dt><dd class='status' data-status='{e(booking.status)}'>"
        f"{e(booking.status.capitalize())}</dd>",
        "</dl>",
    ]
    if note:
        parts.append(f"<p class='note' role='status'>{e(note)}</p>")
    if booking.status == "confirmed":
        parts += [
            f"<form method='post' action='{action}' class='change'>",
            "<input type='hidden' name='action' value='change'>",
            "<label for='party'>Guests</label>",
            f"<input id='party' name='party_size' type='number' min='1' max='20' required"
            f" value='{booking.party_size}'>",
            "<label for='time'>Time</label>",
            f"<input id='time' name='reservation_time' type='time' required"
            f" value='{booking.reservation_time:%H:%M}'>",
            "<button type='submit' class='btn'>Save changes</button>",
            "</form>",
        ]
    if booking.status in ("confirmed", "requested"):
        parts += [
            f"<form method='post' action='{action}' class='cancel'>",
            "<input type='hidden' name='action' value='cancel'>",
            "<button type='submit' class='btn btn-danger' id='cancel'>Cancel my booking</button>",
            "</form>",
        ]
    return "\n".join(parts)


async def show(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    found = await _booking(request, settings)
    if found is None:
        return _not_found()
    token, booking = found
    notes = {"cancelled": "Your booking is cancelled.", "changed": "Your booking is changed."}
    note = notes.get(request.query_params.get("done", ""), "")
    return _page(settings.restaurant_name, _render(settings, token, booking, note))


async def act(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    found = await _booking(request, settings)
    if found is None:
        return _not_found()
    token, booking = found
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _page("Too large", "<h1>That form is too large</h1>", 413)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    pool, today = request.app.state.pool, settings.today()

    def same(held: Reservation) -> bool:  # judged on the locked row that is then changed
        return held.id == booking.id and held.confirmation_number == booking.confirmation_number

    if form.get("action") == "cancel":
        result = await reservations.cancel(pool, booking.phone_number, today, GUEST, same)
        done = "cancelled"
    elif form.get("action") == "change":
        try:
            changes = _changes(form, booking, today)
        except RequestInvalid as exc:
            problems = "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in exc.fields.items())
            content = _render(settings, token, booking, f"Not changed: {problems}.")
            return _page(settings.restaurant_name, content, 422)
        try:
            result = await reservations.change(
                pool, booking.phone_number, changes, today, GUEST, same
            )
        except reservations.SlotUnavailable as refused:
            content = _render(settings, token, booking, f"Not changed: {refused}.")
            return _page(settings.restaurant_name, content, 409)
        done = "changed"
    else:
        return _page("Unknown action", "<h1>Unknown action</h1>", 422)
    if result.outcome == "not_found":
        content = _render(settings, token, booking, "This booking can no longer be changed here.")
        return _page(settings.restaurant_name, content, 409)
    # Post/redirect/get: a reload does not post again.
    return RedirectResponse(f"/r/{token}?done={done}", status_code=303, headers=HEADERS)


def _changes(form: dict[str, str], booking: Reservation, today: dt.date) -> dict[str, Any]:
    """The fields the guest altered, checked as any change is (RequestInvalid otherwise)."""
    raw: dict[str, Any] = {}
    party = form.get("party_size", "").strip()
    if party and party != str(booking.party_size):
        raw["party_size"] = int(party) if party.isascii() and party.isdigit() else party
    clock = form.get("reservation_time", "").strip()
    if clock and clock != f"{booking.reservation_time:%H:%M}":
        raw["reservation_time"] = clock
    if not raw:
        return {}
    return validate_change(raw, today=today)


routes = [
    Route("/r/{token}", show, methods=["GET"]),
    Route("/r/{token}", act, methods=["POST"]),
]
