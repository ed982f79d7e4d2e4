"""The voice page in a real browser: Debian's Chromium, driven by Playwright, against the real
server, the offline model and PostgreSQL.

Chromium's fake microphone plays `tests/data/make_wav.py`'s speech-like WAV in a loop, so the
microphone is always "talking". The page's mute button decides when the model hears it: calls
start muted (the page then sends silence) except where a test wants the voice, which makes
barge-in deterministic -- unmute while the assistant's greeting is playing, and the model's VAD
hears the caller start speaking within a few 20 ms windows.

The page's counters (`window.voiceTest`) and the model's own `/stats` are the evidence; every
wait is bounded (Playwright's timeout is 15 s) and waits for a condition, never for time.
Screenshots go to `tests/artifacts/` (git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import sys
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import offline_model
import offline_model.accuracy
from offline_model import dialog
from offline_model.audio import synthesize
from offline_model.conversation import NOT_HEARD
from offline_model.intents import parse
from protocol import realtime as p
from tests.conftest import LiveServer, serve_app

CHROMIUM = Path("/usr/bin/chromium")
DATA = Path(__file__).parent / "data"
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 15_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium for the browser tests; enable them: apt-get install chromium",
    ),
]

async_api = pytest.importorskip("playwright.async_api", reason="pip install -e '.[dev]'")
async_api.expect.set_options(timeout=TIMEOUT_MS)

BOOK = "Book a table for 4 tomorrow at 7pm, my name is Ada Lovelace, phone 9820 7272"
SPOKEN_FIXTURE = "book-klatt-145"  # says BOOK; the README lists what it recovers
PHONE_E164 = "+6598207272"  # 9820 7272 in the default region (SG)
GREETING_SAMPLES = len(synthesize(dialog.GREETING)) // 2  # what the model says first, in samples


def chromium_args(wav: Path) -> list[str]:
    """Playwright gives every launch a fresh temporary profile (--user-data-dir) of its own."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]


# Installed before the page's own scripts: every CSP violation the page causes, in words. The
# server sends a strict policy with every page (server/web/http_guard.py), and Chromium also logs
# each violation as a console error, which `open_caller` counts as a problem too.
CSP_RECORDER = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("make_wav", DATA / "make_wav.py")
    assert spec is not None and spec.loader is not None
    make_wav = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_wav)
    return make_wav.write(tmp_path_factory.mktemp("mic") / "fake-mic.wav")


def load_script(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(path.stem, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spoken_booking_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken booking fixture between silences: 2.5 s before it (the host greets first),
    4 s after it (the turn ends, the host reads the name and number back), then the caller's
    "yes" (espeak-ng, now) and 4 s for the booking before Chromium loops the file."""
    fixtures = load_script(DATA / "speech" / "make_fixtures.py")
    pcm, rate = fixtures.read(DATA / "speech" / f"{SPOKEN_FIXTURE}.wav")
    path = tmp_path_factory.mktemp("speech") / "spoken-booking.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        yes = offline_model.accuracy.synthesize("Yes, that's right.", "en-us+klatt", 145, rate)
        out.writeframes(bytes(rate * 5) + pcm + bytes(rate * 8) + yes + bytes(rate * 8))
    return path


@pytest.fixture(scope="module")
async def model(settings) -> AsyncIterator[offline_model.OfflineModel]:
    """Our own offline model, so its /stats show what reached it."""
    handle = await offline_model.start(
        host="127.0.0.1", port=0, timezone=settings.restaurant_timezone
    )
    try:
        yield handle
    finally:
        await handle.close()


@pytest.fixture(scope="module")
async def server(settings, database, model) -> AsyncIterator[LiveServer]:
    async with serve_app(settings.model_copy(update={"openai_base_url": model.url})) as live:
        yield live


@pytest.fixture(scope="module")
async def browser(fake_mic_wav: Path) -> AsyncIterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=chromium_args(fake_mic_wav),
            timeout=TIMEOUT_MS,
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Caller:
    """One page, with the few gestures a caller makes and a look at the page's counters."""

    page: Any
    server: LiveServer
    problems: list[str] = field(default_factory=list)

    async def open(self) -> None:
        await self.page.goto(self.server.url + "/")
        await self.page.wait_for_function("() => window.voiceTest !== undefined")

    async def start(self, *, muted: bool) -> None:
        if muted:
            await self.page.click("#mute")
            await async_api.expect(self.page.locator("#mute")).to_have_attribute(
                "aria-pressed", "true"
            )
        await self.page.click("#call")
        await self.page.wait_for_selector("#connection[data-state=connected]")
        await async_api.expect(self.page.locator("#message")).to_be_enabled()

    async def type_turn(self, text: str) -> None:
        await self.page.fill("#message", text)
        await self.page.press("#message", "Enter")
        await async_api.expect(self.page.locator("#message")).to_have_value("")

    async def until(self, expression: str, arg: Any = None) -> Any:
        handle = await self.page.wait_for_function(expression, arg=arg, polling=50)
        return await handle.json_value()

    async def counters(self) -> dict[str, Any]:
        return await self.page.evaluate("() => JSON.parse(JSON.stringify(window.voiceTest))")


@contextlib.asynccontextmanager
async def open_caller(
    browser: Any, server: LiveServer, *, width: int = 1280, height: int = 860
) -> AsyncIterator[Caller]:
    """A fresh browser context on the page; fails the test if the page logged any error."""
    context = await browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(TIMEOUT_MS)
    await context.add_init_script(CSP_RECORDER)
    page = await context.new_page()
    who = Caller(page, server)
    page.on("pageerror", lambda error: who.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            who.problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    try:
        await who.open()
        yield who
        blocked = await page.evaluate("() => window.cspViolations")
        who.problems.extend(f"CSP violation: {violation}" for violation in blocked)
    finally:
        await context.close()
    assert who.problems == [], "the page logged errors or broke its Content-Security-Policy"


@pytest.fixture
async def caller(browser, server: LiveServer) -> AsyncIterator[Caller]:
    async with open_caller(browser, server) as who:
        yield who


async def card_code(page: Any) -> str:
    await page.wait_for_selector("#reservation-card:not([hidden])")
    code = await page.get_attribute("#card-code", "data-code")
    assert code
    return code


async def model_stats(model: offline_model.OfflineModel) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"http://127.0.0.1:{model.port}/stats")
        response.raise_for_status()
        return response.json()


# --- tests ------------------------------------------------------------------------------------


async def test_a_typed_booking_shows_the_card_with_the_confirmation_number_in_the_database(
    caller: Caller, pool
):
    page = caller.page
    await caller.start(muted=True)
    # The host's greeting first (the lookup test types over it instead).
    await caller.until("() => voiceTest.responses >= 1 && !voiceTest.playing")
    await caller.type_turn(BOOK)

    code = await card_code(page)
    row = await pool.fetchrow(
        "SELECT name, party_size, reservation_time, confirmation_number FROM reservations"
        " WHERE phone_number = $1",
        PHONE_E164,
    )
    assert row is not None, "the booking is not in the database"
    assert row["confirmation_number"] == code
    assert await page.inner_text("#card-name") == row["name"] == "Ada Lovelace"
    assert await page.inner_text("#card-party") == "4 guests"
    assert await page.inner_text("#card-time") == "7:00 PM"  # Chromium's en-US locale
    assert await page.text_content("#card-code .visually-hidden") == " ".join(code)
    assert "Booking confirmed" in await page.inner_text("#card-title")

    # The typed turn and the host's spoken confirmation are both in the transcript.
    typed = page.locator(".turn-user[data-how=typed] .turn-text")
    await async_api.expect(typed).to_have_text(BOOK)
    spelled = " ".join(code)
    confirmation = page.locator(".turn-assistant:not(.is-live)", has_text=spelled)
    await async_api.expect(confirmation).to_be_visible()
    # Let the reply finish playing, then keep a picture of the finished booking.
    await caller.until(
        "() => voiceTest.last['response.done'] && !voiceTest.playing && voiceTest.samplesPlayed > 0"
    )
    await page.screenshot(path=str(ARTIFACTS / "booking.png"), full_page=True)
    await page.emulate_media(color_scheme="dark", reduced_motion="reduce")  # no transitions
    await page.screenshot(path=str(ARTIFACTS / "booking-dark.png"), full_page=True)


async def test_a_lookup_shows_the_card_and_a_wrong_name_says_not_found(
    browser, server: LiveServer, pool
):
    async with open_caller(browser, server, width=390, height=844) as caller:  # a phone
        await lookup(caller, server)


async def lookup(caller: Caller, server: LiveServer) -> None:
    page = caller.page
    day = (server.settings.today() + dt.timedelta(days=3)).isoformat()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        made = await http.post(
            "/api/reservations",
            json={
                "name": "Grace Hopper",
                "phone_number": "9820 7272",
                "reservation_date": day,
                "reservation_time": "12:30",
                "party_size": 2,
                "other_info": {"notes": "window seat"},
            },
        )
    assert made.status_code == 201, made.text
    booked = made.json()

    await caller.start(muted=True)
    await caller.type_turn("Look up my reservation, phone 9820 7272, my name is Alan Turing")
    notice = page.locator("#notice[data-kind=not-found]")
    await async_api.expect(notice).to_be_visible()
    await async_api.expect(notice).to_contain_text("No reservation found")
    assert await page.is_hidden("#reservation-card")

    await caller.type_turn("Look up my reservation, phone 9820 7272, my name is Grace Hopper")
    code = await card_code(page)
    assert code == booked["confirmation_number"]
    assert "found your reservation" in await page.inner_text("#card-title")
    assert await page.inner_text("#card-name") == "Grace Hopper"
    assert await page.inner_text("#card-notes") == "window seat"
    assert await page.is_hidden("#notice")
    await caller.until("() => voiceTest.last['reservation.found'] && !voiceTest.playing")
    await page.screenshot(path=str(ARTIFACTS / "lookup-phone.png"), full_page=True)


async def test_the_fake_microphone_is_heard_by_the_model(caller: Caller, model, server: LiveServer):
    page = caller.page
    before = (await model_stats(model))["audio_bytes_received"]
    await caller.start(muted=False)

    # The model's energy VAD found speech in what arrived: real microphone audio, not zeros.
    await caller.until("() => voiceTest.events.includes('input_audio_buffer.speech_started')")
    counters = await caller.counters()
    assert counters["framesSent"] > 0
    assert counters["bytesSent"] == counters["framesSent"] * 960  # 20 ms of PCM16 at 24 kHz
    # The meter's input is the WAV, not silence. It shows the last frame's level, and a frame
    # between two syllables is quiet: wait for a loud one rather than judge whichever is last.
    await caller.until("() => voiceTest.micLevel > 0.02")
    assert int(await page.get_attribute("#mic-meter", "aria-valuenow") or 0) > 0
    # The model's own count grows by at least what the page had sent by then. Asked from a
    # blank tab: the page's CSP rightly stops the page itself reaching the model's origin.
    blank = await page.context.new_page()
    await blank.wait_for_function(
        """async ([url, want]) => {
            const stats = await (await fetch(url, {cache: "no-store"})).json();
            return stats.audio_bytes_received >= want;
        }""",
        arg=[f"http://127.0.0.1:{model.port}/stats", before + counters["bytesSent"]],
        polling=50,
    )
    await blank.close()
    assert (await model_stats(model))["audio_bytes_received"] - before >= counters["bytesSent"]

    # Muting sends silence: the model's VAD ends the turn, the recogniser's words for the
    # synthetic syllables (none, or a stray "a") are shown, and the host answers them as it
    # would the same words typed.
    await page.click("#mute")
    transcription = await caller.until(f"() => voiceTest.last['{p.INPUT_TRANSCRIPTION_COMPLETED}']")
    heard = transcription["transcript"]
    spoken = page.locator(f'.turn-user[data-item-id="{transcription["item_id"]}"] .turn-text')
    await async_api.expect(spoken).to_have_text(heard.strip() or "(spoken)")
    reply_text = NOT_HEARD
    if heard.strip():
        slots = dialog.Slots(spoken=True)  # heard, not typed: the host asks as it would then
        slots.absorb(parse(heard, server.settings.today()))
        answer = dialog.decide(slots, dialog.TOOL_FOR.values())
        assert isinstance(answer, dialog.Say)
        reply_text = answer.text
    reply = page.locator(".turn-assistant", has_text=reply_text).last
    await async_api.expect(reply).to_be_visible()


async def test_the_assistant_audio_is_played_in_full_without_gaps(caller: Caller, model):
    await caller.start(muted=True)  # the host greets the caller
    counters = await caller.until(
        """() => voiceTest.responses >= 1 && voiceTest.samplesReceived > 0 && !voiceTest.playing
                 && voiceTest.samplesPlayed >= voiceTest.samplesReceived && voiceTest"""
    )
    assert counters["audioDeltasReceived"] >= 2
    assert counters["samplesReceived"] == GREETING_SAMPLES  # every sample the model sent ...
    assert counters["samplesPlayed"] == GREETING_SAMPLES  # ... went to the speakers
    assert counters["playbackUnderruns"] == 0  # with no gap in the middle
    assert counters["playbackFlushes"] == 0
    greeting = caller.page.locator(".turn-assistant", has_text=dialog.GREETING)
    await async_api.expect(greeting).to_be_visible()

    # Hanging up closes the socket normally, and the server lets go of the model session.
    await caller.page.click("#call")
    await caller.page.wait_for_selector("#connection[data-state=ended]")
    await caller.until("() => voiceTest.close && voiceTest.close.code === 1000")
    async with asyncio.timeout(TIMEOUT_MS / 1000):
        await model.wait_for_sessions(0)


async def test_speaking_over_the_assistant_flushes_playback_and_truncates_its_reply(
    caller: Caller,
):
    page = caller.page
    await caller.start(muted=True)
    # A quarter of a second into the greeting, the caller starts talking.
    await caller.until(f"() => voiceTest.samplesPlayed >= {p.PCM16_RATE // 4}")
    await page.click("#mute")

    truncated = await caller.until("() => voiceTest.last['conversation.item.truncated']")
    counters = await caller.counters()
    sent = counters["lastTruncate"]
    cut = counters["lastInterruption"]
    greeting_item = counters["last"]["response.output_audio.done"]["item_id"]

    assert counters["events"].index(p.SPEECH_STARTED) < counters["events"].index(p.ITEM_TRUNCATED)
    assert counters["playbackFlushes"] == 1
    assert counters["truncatesSent"] == 1
    assert sent == {
        "type": p.ITEM_TRUNCATE,
        "item_id": greeting_item,
        "content_index": 0,
        "audio_end_ms": sent["audio_end_ms"],
    }
    # Milliseconds actually played: some, never more than played or received, and not all of it.
    assert 0 < sent["audio_end_ms"] <= cut["playedMs"] < cut["receivedMs"]
    assert cut["receivedMs"] <= GREETING_SAMPLES * 1000 // p.PCM16_RATE
    # The model took the cut exactly as sent.
    assert truncated["item_id"] == greeting_item
    assert truncated["content_index"] == 0
    assert truncated["audio_end_ms"] == sent["audio_end_ms"]
    # The rest of the greeting never plays.
    assert counters["samplesPlayed"] < GREETING_SAMPLES
    assert not counters["playing"]
    await async_api.expect(page.locator(".turn-assistant.is-interrupted")).to_be_visible()
    await async_api.expect(page.locator(".turn-user[data-how=spoken]").first).to_be_visible()


async def test_a_dropped_call_is_explained_and_call_again_starts_a_new_one(
    browser, settings, model
):
    short = settings.model_copy(update={"openai_base_url": model.url, "max_session_s": 1.0})
    async with serve_app(short) as live, open_caller(browser, live) as who:
        page = who.page
        await who.start(muted=True)
        # The server ends the call at its maximum length (close 1000 "maximum call length").
        await page.wait_for_selector("#connection[data-state=dropped]")
        close = (await who.counters())["close"]
        assert (close["code"], close["reason"]) == (1000, "maximum call length")
        await async_api.expect(page.locator("#alert")).to_contain_text("reached its maximum length")
        assert await page.is_disabled("#message")
        assert await page.is_hidden("#call")
        await page.screenshot(path=str(ARTIFACTS / "dropped.png"))

        await page.click("#reconnect")
        await page.wait_for_selector("#connection[data-state=connected]")
        assert await page.is_hidden("#reconnect")
        assert await page.is_hidden("#alert")


async def test_the_page_is_served_under_a_strict_policy_and_a_violation_would_be_caught(
    browser, server: LiveServer, model
):
    """The policy is there, and breaking it is seen: by the listener and on the console, which
    every other test here checks after a whole call."""
    context = await browser.new_context()
    await context.add_init_script(CSP_RECORDER)
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        response = await page.goto(server.url + "/")
        assert response is not None
        headers = await response.all_headers()
        policy = headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy
        assert f"connect-src 'self' {server.ws_url};" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        await page.wait_for_function("() => window.voiceTest !== undefined")  # modules ran
        assert await page.evaluate("() => window.cspViolations") == []

        # What an injected script would do: run inline code, and reach another origin.
        ran = await page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.inlineRan = true";
                document.head.append(script);
                return window.inlineRan === true;
            }"""
        )
        assert ran is False
        await page.evaluate(f"() => {{ new WebSocket({model.ws_url!r}); }}")
        await page.wait_for_function("() => window.cspViolations.length >= 2", polling=50)
        blocked = await page.evaluate("() => window.cspViolations")
        assert blocked[0] == "script-src-elem blocked inline"
        assert blocked[1].startswith("connect-src blocked ws://127.0.0.1:")
        assert any("Content Security Policy" in text for text in console)
    finally:
        await context.close()


async def test_a_call_over_the_per_client_limit_is_explained(browser, settings, model):
    capped = settings.model_copy(
        update={
            "openai_base_url": model.url,
            "max_calls_per_client": 1,
            "max_new_calls_per_min": 0,
        }
    )
    async with (
        serve_app(capped) as live,
        open_caller(browser, live) as first,
        open_caller(browser, live) as second,
    ):
        await first.start(muted=True)
        await second.page.click("#call")
        await second.page.wait_for_selector("#connection[data-state=dropped]")
        close = (await second.counters())["close"]
        assert (close["code"], close["reason"]) == (1013, "too many calls from this client")
        await async_api.expect(second.page.locator("#alert")).to_contain_text(
            "Too many calls are open from your network"
        )
        assert (await first.counters())["state"] == "connected"  # the first call goes on


async def test_a_booking_changed_then_cancelled_by_voice_updates_the_card(caller: Caller, pool):
    page = caller.page
    await caller.start(muted=True)
    await caller.type_turn(BOOK)
    code = await card_code(page)

    await caller.type_turn("Please move my booking to 8pm")
    readback = page.locator(".turn-assistant", has_text="To confirm: change the booking")
    await expect_visible(readback)
    assert await page.inner_text("#card-time") == "7:00 PM"  # nothing changes before the yes
    await caller.type_turn("yes")
    await caller.until("() => voiceTest.last['reservation.changed']")
    assert await page.inner_text("#card-title") == "Booking changed"
    assert await page.inner_text("#card-time") == "8:00 PM"
    assert await page.get_attribute("#card-code", "data-code") == code  # same number

    await caller.type_turn("Cancel my reservation")
    await expect_visible(page.locator(".turn-assistant", has_text="To confirm: cancel"))
    await caller.type_turn("yes")
    await caller.until("() => voiceTest.last['reservation.cancelled']")
    assert await page.inner_text("#card-title") == "Booking cancelled"
    assert await page.get_attribute("#reservation-card", "data-kind") == "cancelled"
    await page.screenshot(path=str(ARTIFACTS / "cancelled.png"), full_page=True)

    rows = await pool.fetch(
        "SELECT action, source FROM reservation_history WHERE phone_number = $1 ORDER BY seq",
        PHONE_E164,
    )
    assert [(r["action"], r["source"]) for r in rows] == [
        ("created", "voice"),
        ("changed", "voice"),
        ("cancelled", "voice"),
    ]


async def expect_visible(locator: Any) -> None:
    await async_api.expect(locator).to_be_visible()


async def test_a_booking_spoken_into_the_microphone_is_confirmed_with_no_typing(
    settings, server: LiveServer, pool, spoken_booking_wav: Path
):
    """Chromium's fake microphone plays an espeak-ng booking; the offline model recognises it,
    calls make_reservation, and the page shows the confirmed booking and what it heard."""
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=chromium_args(spoken_booking_wav),
            timeout=TIMEOUT_MS,
        )
        try:
            async with open_caller(chromium, server) as caller:
                page = caller.page
                await caller.start(muted=False)
                heard = page.locator(".turn-user[data-how=spoken] .turn-text", has_text="Lovelace")
                await async_api.expect(heard).to_be_visible(timeout=3 * TIMEOUT_MS)
                code = await card_code(page)
                assert await page.input_value("#message") == ""  # nothing was typed
                row = await pool.fetchrow(
                    "SELECT name, party_size, reservation_date, reservation_time,"
                    " confirmation_number FROM reservations WHERE phone_number = $1",
                    PHONE_E164,
                )
                assert row is not None, "the spoken booking is not in the database"
                assert row["confirmation_number"] == code
                assert (row["name"], row["party_size"]) == ("Ada Lovelace", 4)
                assert row["reservation_time"] == dt.time(19, 0)
                assert row["reservation_date"] == server.settings.today() + dt.timedelta(days=1)
                transcript = await heard.first.inner_text()
                assert "table for 4 tomorrow at 7 pm" in transcript
                await page.screenshot(path=str(ARTIFACTS / "spoken-booking.png"), full_page=True)
        finally:
            await chromium.close()
