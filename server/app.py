"""`create_app(settings)`: the one place where the pieces are wired together.

Start-up opens the database (configured or embedded) and its pool; shutdown closes them. Every
handler finds what it needs on `app.state`, so nothing else holds global state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import api
from server.database import open_database
from server.openapi import build_openapi
from server.reservations import DatabaseUnavailable
from server.settings import Settings

log = logging.getLogger("server.app")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = await open_database(settings)
        app.state.database = database
        app.state.pool = database.pool
        try:
            yield
        finally:
            await database.close()

    openapi_document = build_openapi()

    async def openapi(request: Request) -> Response:
        return api.JSONResponse(openapi_document)

    app = Starlette(
        routes=[*api.routes, Route("/openapi.json", openapi, methods=["GET"])],
        lifespan=lifespan,
        exception_handlers={
            api.ApiError: _api_error,
            DatabaseUnavailable: _database_unavailable,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.settings = settings
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, api.ApiError)
    return exc.response()


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    response = api.error_response(
        503, "database_unavailable", "the reservation database is unavailable; try again shortly"
    )
    response.headers["Retry-After"] = "2"
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return api.error_response(
        exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return api.error_response(500, "internal_error", "an unexpected error occurred")
