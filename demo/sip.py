"""``python -m demo --sip``: a phone call over SIP, end to end, with no key and no carrier.

A SIP call needs two parties besides us: a carrier and OpenAI. The offline model plays both
(`offline_model.sip`), so this demo runs everything in one process: the offline model,
the server (``create_app`` under uvicorn on a loopback port, with the database of ``.env`` or
the embedded one) and a simulated caller. The call goes the way a real one does:

1. The offline model signs ``realtime.call.incoming`` with a fresh webhook secret and posts it to
   ``/openai/webhook``; the server checks it and accepts the call with its session settings.
2. The server opens the sideband; the host greets the caller.
3. The caller asks for a table (a typed turn stands in for the voice); the model calls
   ``make_reservation`` on the sideband and the server runs it against PostgreSQL.
4. The caller says goodbye; the model calls ``end_call``, says goodbye, and once that has played
   the server hangs up.

It exits 0 only when the call was hung up by the server and the booking is found again through
the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable

import orjson
import uvicorn
from pydantic import SecretStr

import offline_model
from demo.texts import guest_text
from offline_model.sip import SipCall, new_secret
from server.access.clients import UVICORN_OPTIONS
from server.app import create_app
from server.serving import uvicorn_ws_options
from server.settings import Settings

Write = Callable[[str], None]


class _Server(uvicorn.Server):
    """uvicorn that says when start-up (the lifespan included) has finished."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    def install_signal_handlers(self) -> None:  # Ctrl-C ends the demo, not just the server
        pass


@contextlib.asynccontextmanager
async def serving(settings: Settings, wait_s: float) -> AsyncIterator[str]:
    """The server on a free loopback port for the block; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        **uvicorn_ws_options(),
        **UVICORN_OPTIONS,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    try:
        if not server.ready.is_set():
            ready.cancel()
            if task.done():
                task.result()  # start-up failed: its error says why
            raise TimeoutError("the server did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=wait_s)
        sock.close()


async def _until(call: SipCall, what: Callable[[SipCall], bool], wait_s: float, step: str) -> None:
    try:
        async with asyncio.timeout(wait_s):
            await call.wait(what)
    except TimeoutError:
        raise DemoFailed(f"no {step} within {wait_s:g}s") from None


def answered(call: SipCall) -> bool:
    """Accepted, the sideband open and the host's greeting over."""
    return call.sidebands > 0 and "response.done" in call.server_events and call.quiet


class DemoFailed(Exception):
    """The SIP demo cannot succeed; the message says why."""


def _find(base: str, phone: str, token: str | None) -> dict[str, object] | None:
    request = urllib.request.Request(f"{base}/api/reservations/{urllib.parse.quote(phone)}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            found: dict[str, object] = orjson.loads(response.read())
            return found
    except urllib.error.HTTPError:
        return None


async def run_sip_demo(
    name: str,
    phone: str,
    wait_s: float,
    write: Write = print,
    report: Write | None = None,
    settings: Settings | None = None,
) -> int:
    """The whole SIP demo; returns the exit status (`settings`: else from the environment)."""
    report = report or write
    secret = new_secret()
    async with offline_model.OfflineModel() as model:
        settings = (settings or Settings()).model_copy(
            update={
                "openai_api_key": None,  # the offline model plays OpenAI (and the carrier)
                "openai_base_url": model.sip.url,
                "openai_websocket_base_url": model.url,
                "openai_webhook_secret": SecretStr(secret),
            }
        )
        async with serving(settings, wait_s) as base:
            written = 0

            def transcript(call: SipCall) -> None:
                nonlocal written
                for line in call.transcripts[written:]:
                    write(f"  host:   {line}")
                written = len(call.transcripts)

            try:
                write(f"ringing {base}/openai/webhook from {phone} (a signed webhook)")
                call, status = await model.sip.place_call(
                    f"{base}/openai/webhook", secret, caller=phone.replace(" ", "")
                )
                if status != 200:
                    raise DemoFailed(f"the webhook was answered {status}")
                await _until(call, answered, wait_s, "answer")
                tools = [t["name"] for t in (call.accepted or {}).get("tools", [])]
                write(f"accepted with {len(tools)} tools ({', '.join(tools)}); sideband open")
                transcript(call)
                turn = (
                    f"I'd like to book a table for 2 tomorrow at 7pm. My name is {name} "
                    f"and my phone is {phone}."
                )
                write(f"  caller: {turn}")
                model.sip.say(call.call_id, turn)
                booked = lambda c: any("booked" in t for t in c.transcripts) and c.quiet  # noqa: E731
                await _until(call, booked, wait_s, "booking")
                transcript(call)
                write("  caller: That's all, thank you. Goodbye!")
                model.sip.say(call.call_id, "That's all, thank you. Goodbye!")
                await _until(call, lambda c: c.state == "ended", wait_s, "hang-up")
                transcript(call)
                write(
                    f"call ended by {call.ended_by}; control plane saw {', '.join(call.requests)}"
                )
                if call.ended_by != "hangup":
                    raise DemoFailed(f"the call ended by {call.ended_by}, not a hang-up")
                token = settings.access_token
                secret_token = token.get_secret_value() if token else None
                found = await asyncio.to_thread(_find, base, phone, secret_token)
                if not found:
                    raise DemoFailed("the booking is not in the book")
                write(await asyncio.to_thread(guest_text, base, phone))
            except DemoFailed as exc:
                report(f"demo failed: {exc}")
                return 1
    write(f"demo passed: booked over SIP and found {found.get('confirmation_number')} by REST")
    return 0
