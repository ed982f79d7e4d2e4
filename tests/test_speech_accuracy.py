"""Spoken numbers and names, generated now with espeak-ng: a random sample of the accuracy
matrix (``python -m bench speech --matrix`` runs all of it), and a whole spoken booking.

The sample's seed is drawn per run and printed, so a failure can be replayed with
``SPEECH_SEED=<seed>``. The booking uses a voice (espeak-ng's ``en-us+klatt2``), a name and a
number that nothing in the recogniser was tuned on; the caller answers each question as asked
and corrects the host's read-back when it is wrong, as a person would.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from offline_model import OfflineModel, accuracy, start
from offline_model.conversation import GO_ON, SPELL_IT
from offline_model.readback import group_digits, spell_name
from protocol import realtime as p

from .test_speech import TOOLS, Client, synthesize_speech

VOICE, SPEED = "en-us+klatt2", 150
NAME, DIGITS = "Nancy Whitfield", "61743052"
SAY_DIGITS = "six one seven four, three oh five two."


def test_a_random_sample_of_the_matrix_hears_answers_better_than_the_general_model() -> None:
    seed = int(os.environ.get("SPEECH_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"speech sample seed {seed} (SPEECH_SEED={seed} replays it)")
    rng = random.Random(seed)
    drawn = accuracy.draw(seed, 1)
    sample = [s for s in drawn if s.kind == "number"][::3] + [s for s in drawn if s.kind == "name"][
        ::3
    ]
    rng.shuffle(sample)
    right: Counter[str] = Counter()
    general: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for score in accuracy.run(sample):
        key = f"{score.sample.kind} {score.path}"
        total[key] += 1
        right[key] += score.right
        general[key] += score.general_right
        assert score.audio_s > 0.5 and score.cpu_s > 0
    for key in sorted(total):
        print(f"{key}: {right[key]}/{total[key]} (general model alone {general[key]})")
    assert sum(total.values()) == 2 * len(sample) == 24
    # The targets (95 % of numbers, 90 % of names on the page) are not met on espeak-ng's
    # default voices (docs/offline-speech.md); what must hold is that listening for the
    # answer never does worse than the general model on the same audio.
    for kind in ("number", "name"):
        keys = [key for key in total if key.startswith(kind)]
        assert sum(right[k] for k in keys) >= sum(general[k] for k in keys)


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[OfflineModel]:
    running = await start("127.0.0.1", 0, pace=0.0, asr_workers=1, timezone="UTC")
    yield running
    await running.close()


def reply_to(question: str) -> str:
    """What the caller says to the host's ``question``."""
    if question.startswith("To confirm"):
        heard_name = spell_name(NAME) in question
        heard_number = group_digits(DIGITS) in question
        if heard_name and heard_number:
            return "Yes, that's right."
        if not heard_number:
            return f"No, it's {SAY_DIGITS}"
        return f"No, my name is {NAME}."
    if question == GO_ON:  # the host heard part of the number: say it again, whole
        return SAY_DIGITS
    if question == SPELL_IT:
        return " ".join(NAME.split()[-1].upper()) + "."
    if question.startswith("Sorry about that"):
        return f"It's {SAY_DIGITS}"
    if "name" in question:
        return f"{NAME}."
    if "phone number" in question:
        return SAY_DIGITS
    if "Sorry" in question:  # not heard: say it all again
        return "Book a table for two tomorrow at eight p m."
    return "A table for two tomorrow at eight p m."


async def test_a_spoken_booking_on_an_untuned_voice_reads_back_and_books(
    model: OfflineModel,
) -> None:
    ws = await connect(model.ws_url + "?model=gpt-realtime", max_size=None)
    client = Client(ws)
    try:
        assert (await client.recv())["type"] == p.SESSION_CREATED
        await client.update(tools=TOOLS)
        said = "Book a table for two tomorrow at eight p m."
        dialog: list[tuple[str, str]] = []
        call: dict[str, Any] | None = None
        for _ in range(8):
            await client.speak(synthesize_speech(said, VOICE, SPEED), 960, bytes(960))
            async with asyncio.timeout(60):
                events = await client.until(p.RESPONSE_DONE)
            call = next((e for e in events if e["type"] == p.FUNCTION_ARGS_DONE), None)
            if call is not None:
                break
            question = next(e for e in events if e["type"] == p.OUTPUT_TRANSCRIPT_DONE)
            dialog.append((said, question["transcript"]))
            said = reply_to(question["transcript"])
        print("\n".join(f"caller: {a}\nhost:   {b}" for a, b in dialog))
        assert call is not None and call["name"] == "make_reservation", dialog
        arguments = json.loads(call["arguments"])
        assert (arguments["name"], arguments["phone_number"]) == (NAME, DIGITS)
        assert (arguments["party_size"], arguments["time"]) == (2, "20:00")
        assert any(host.startswith("To confirm") for _, host in dialog)  # read back first
    finally:
        await ws.close()
