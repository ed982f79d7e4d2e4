"""`create_app(settings)`: the one place where the pieces are wired together.

Start-up opens the database (configured or embedded) and its pool; shutdown closes them. Every
handler finds what it needs on `app.state`, so nothing else holds global state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from server.access.admission import Admission
from server.access.budget import Budget
from server.book import outbox
from server.book.database import open_database
from server.book.live_feed import LiveFeed
from server.book.reservations import DatabaseUnavailable
from server.book.restaurant import ProfileCache
from server.call.core import CallSpec
from server.call.model import ModelClient
from server.call.switchboard import Switchboard
from server.messaging.sender import Sender
from server.messaging.webhooks import SmsWebhooks
from server.realtime.instructions import session_update
from server.records import api as records_api
from server.records import cost_today
from server.records.metrics import Metrics
from server.records.recorder import Recorder
from server.settings import Settings
from server.startup_warnings import startup_warnings
from server.transports.realtime_socket import RealtimeEndpoint
from server.transports.sip_call import SipCalls
from server.transports.sip_webhook import WEBHOOK_PATH, OpenAIWebhook
from server.transports.twilio_stream import TwilioStreamEndpoint
from server.transports.twilio_webhook import STREAM_PATH, VoiceWebhook
from server.web import api, manage, messages_api, restaurant_api, staff_api
from server.web.http_guard import HttpGuard
from server.web.openapi import build_openapi
from tools import CALL_CONTROL, ToolContext, ToolResult, default_registry

log = logging.getLogger("server.app")

STATIC_DIR = Path(__file__).parent / "static"
# Objects per young-generation collection (CPython's default is 700): the relay makes a few
# short-lived objects per audio frame, nearly all freed by reference counting, so collecting
# less often costs little memory and saves the pauses.
GC_YOUNG_THRESHOLD = 20_000


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    registry = default_registry()
    switchboard = Switchboard(settings)
    admission = Admission(settings)
    metrics = Metrics(settings) if settings.metrics else None
    profile_cache = ProfileCache(settings)  # the instructions' hours, read at each call's start
    realtime_endpoint = RealtimeEndpoint(
        switchboard,
        settings,
        lambda: session_update(
            settings, registry.schemas(without=CALL_CONTROL), profile=profile_cache.current
        ),
        admission,
    )
    can_transfer = bool(settings.transfer_number and settings.twilio_auth_token)
    phone_tools = frozenset() if can_transfer else frozenset({"transfer_call"})
    twilio_stream = TwilioStreamEndpoint(
        switchboard,
        settings,
        lambda: registry.schemas(without=phone_tools),
        lambda: profile_cache.current,
    )
    sip_tools = frozenset() if settings.transfer_number else frozenset({"transfer_call"})
    sip_calls = SipCalls(
        switchboard,
        settings,
        lambda: registry.schemas(without=sip_tools),
        lambda: profile_cache.current,
    )
    sender = Sender(settings)
    sms_webhooks = SmsWebhooks(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for warning in startup_warnings(settings):
            log.warning("%s", warning)
        async with contextlib.AsyncExitStack() as stack:
            database = await open_database(settings)
            stack.push_async_callback(database.close)
            app.state.database = database
            app.state.pool = database.pool
            await admission.start(database.pool)
            stack.push_async_callback(admission.close)
            await profile_cache.start(database.pool)
            stack.push_async_callback(profile_cache.close)
            live_feed = LiveFeed(database.dsn, database.pool, settings)
            await live_feed.start()
            stack.push_async_callback(live_feed.close)
            app.state.live_feed = live_feed
            # The manage links' key: configured, else one the processes share via the database.
            secret = settings.manage_link_secret
            app.state.manage_key = (
                secret.get_secret_value().encode()
                if secret is not None
                else await outbox.shared_secret(database.pool, "manage_links")
            )
            await sender.start(database.pool, app.state.manage_key)
            stack.push_async_callback(sender.close)
            observers = switchboard.observers
            if metrics is not None:
                observers.append(metrics)
            if settings.call_records:
                recorder = Recorder(settings, metrics.database_error if metrics else None)
                await recorder.start(database.pool)
                stack.push_async_callback(recorder.close)  # before the pool closes: last flush
                observers.append(recorder)
                app.state.recorder = recorder

            if settings.model_daily_budget_usd is not None:
                budget = Budget(
                    settings,
                    lambda: cost_today(database.pool, settings),
                    metrics.budget if metrics is not None else None,
                )
                await budget.start()
                stack.push_async_callback(budget.close)
                switchboard.budget = app.state.budget = budget

            context = ToolContext(pool=database.pool, settings=settings)

            async def run_tool(name: str, arguments: str, call: CallSpec) -> ToolResult:
                # The call's records id (unique across processes) goes into the history of
                # whatever the tool changes: the staff book links a booking to its call.
                on_call = dataclasses.replace(context, call_id=call.record_id)
                return await registry.run(name, arguments, on_call, settings.tool_timeout_s)

            switchboard.model = await stack.enter_async_context(model_client(settings))
            switchboard.run_tool = run_tool
            stack.push_async_callback(sip_calls.close)  # before the model client closes
            # Everything made at start-up lives as long as the process: keep it out of the
            # garbage collector's full passes, which would otherwise pause every call's audio.
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
            yield

    openapi_document = build_openapi()

    async def openapi(request: Request) -> Response:
        return api.JSONResponse(openapi_document)

    app = Starlette(
        routes=[
            *staff_api.routes,  # first: its paths are more specific than api's catch-all
            *api.routes,
            *messages_api.routes,
            *manage.routes,
            *restaurant_api.routes,
            *records_api.routes,
            Route("/openapi.json", openapi, methods=["GET"]),
            WebSocketRoute("/v1/realtime", realtime_endpoint),
            Route("/twilio/voice", VoiceWebhook(settings, switchboard).handle, methods=["POST"]),
            WebSocketRoute(STREAM_PATH, twilio_stream),
            Route("/twilio/sms", sms_webhooks.incoming, methods=["POST"]),
            Route("/twilio/sms-status", sms_webhooks.status, methods=["POST"]),
            Route(
                WEBHOOK_PATH,
                OpenAIWebhook(settings, switchboard, sip_calls).handle,
                methods=["POST"],
            ),
            Mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="page"),
        ],
        lifespan=lifespan,
        middleware=[Middleware(HttpGuard, settings=settings)],
        exception_handlers={
            api.ApiError: _api_error,
            DatabaseUnavailable: _database_unavailable,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.settings = settings
    app.state.switchboard = switchboard
    app.state.admission = admission
    app.state.sip_calls = sip_calls
    app.state.sender = sender
    app.state.metrics = metrics
    app.state.profile_cache = profile_cache
    app.state.budget = None
    app.state.recorder = None
    return app


@asynccontextmanager
async def model_client(settings: Settings) -> AsyncIterator[ModelClient]:
    """The OpenAI Realtime API when a key is set; else the offline model, run in this process.

    OPENAI_BASE_URL without a key points at a local model of the same protocol (tests, benches).
    """
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    base_url = settings.openai_base_url
    websocket_base_url = settings.openai_websocket_base_url
    offline = None
    if key is None and base_url is None:
        import offline_model

        offline = await offline_model.start(
            host="127.0.0.1", port=0, timezone=settings.restaurant_timezone
        )
        # Sockets to the model's port; SIP's control plane (accept, hangup) to its own.
        base_url, websocket_base_url = offline.sip.url, offline.url
        log.info(
            "model: no OPENAI_API_KEY, using the offline model at %s (speech and typed turns)",
            base_url,
        )
    elif key is None:
        log.info("model: %s at %s (no OPENAI_API_KEY set)", settings.realtime_model, base_url)
    else:
        log.info("model: %s at %s", settings.realtime_model, base_url or "the OpenAI API")
    client = ModelClient(
        api_key=key or "offline",
        base_url=base_url,
        model=settings.realtime_model,
        timeout_s=settings.model_connect_timeout_s,
        websocket_base_url=websocket_base_url,
    )
    try:
        yield client
    finally:
        await client.close()
        if offline is not None:
            await offline.close()


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, api.ApiError)
    return exc.response()


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    if request.app.state.metrics is not None:
        request.app.state.metrics.database_error("rest")
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
