"""Listening for the answer to the host's question, and the read-back: pure rules, no audio.

What the recogniser listens for after each question, how its words become a name or a number,
when it falls back to the general model, and the spoken booking's read-back with "yes" and
"no, it's …" corrections.
"""

from __future__ import annotations

import base64
from datetime import date

import pytest

from offline_model import asr_worker, grammars, names
from offline_model.answers import answer_of
from offline_model.conversation import SPELL_IT, Conversation, Transcribe
from offline_model.dialog import Call, Say, Slots, decide
from offline_model.grammars import Listen
from offline_model.intents import parse
from offline_model.readback import WHAT_IS_RIGHT, group_digits, spell_name
from offline_model.response import ResponseRun
from offline_model.stats import Stats
from offline_model.transcript import normalise
from protocol import realtime as p

TODAY = date(2026, 6, 10)
TOOLS = {"make_reservation"}


@pytest.mark.parametrize(
    ("phone", "said"),
    [
        ("98207272", "9 8 2 0, 7 2 7 2"),
        ("+6598207272", "plus 6 5, 9 8 2 0, 7 2 7 2"),
        ("0123456789", "0 1 2, 3 4 5, 6 7 8 9"),
    ],
)
def test_numbers_are_read_back_digit_by_digit_in_groups(phone: str, said: str) -> None:
    assert group_digits(phone) == said


def test_names_are_read_back_letter_by_letter() -> None:
    assert spell_name("Ada Lovelace") == "A D A, L O V E L A C E"


@pytest.mark.parametrize(
    ("words", "text"),
    [
        ("l. o. v. e. l. a. c. e.", "Lovelace"),
        ("lima echo echo", "Lee"),
        ("h. o. double p. e. r.", "Hopper"),
        ("nine double eight two zero triple seven two", "98820777" + "2"),
        ("plus six five nine eight two zero seven two seven two", "+6598207272"),
        ("my name is mike lee", "my name is mike Lee"),  # a lone NATO word stays a word
    ],
)
def test_spoken_letters_nato_words_and_repeats_become_text(words: str, text: str) -> None:
    assert normalise(words) == text


def test_an_answer_fills_the_slot_the_host_asked_for() -> None:
    def heard(text: str, heard_as: str, slots: Slots | None = None) -> str | None:
        return answer_of(parse(text, TODAY), text, heard_as, slots or Slots()).name

    assert heard("Nancy Whitfield", "name") == "Nancy Whitfield"
    assert heard("Nancy Whitfield", "general") is None  # not an answer: taken as said
    assert heard("Whitfeld", "spelling", Slots(name="Nancy Whitfield")) == "Nancy Whitfeld"
    assert heard("no Whitfeld", "confirm", Slots(name="Nancy Whitfield")) == "Nancy Whitfeld"
    assert heard("yes that's right", "confirm", Slots(name="Ada Lovelace")) is None
    assert heard("book a table for two", "name") is None


def test_the_general_model_wins_only_when_the_caller_clearly_said_something_else() -> None:
    digits = "nine eight two zero seven two seven two"
    assert asr_worker.choose(Listen.PHONE, digits, "nine a to zero") == Listen.PHONE
    assert asr_worker.choose(Listen.PHONE, digits, "book for one") == Listen.PHONE
    assert (
        asr_worker.choose(Listen.PHONE, digits, "can i book a table for tomorrow") == Listen.GENERAL
    )
    assert asr_worker.choose(Listen.PHONE, "nine eight", "nine eight") == Listen.GENERAL
    assert asr_worker.choose(Listen.NAME, "", "the") == Listen.GENERAL
    assert asr_worker.choose(Listen.NAME, "nancy whitfield", "nancy with") == Listen.NAME


def test_every_word_an_answer_can_be_heard_as_has_a_pronunciation() -> None:
    spoken = grammars.words()
    dictionary = asr_worker._dictionary(spoken)
    said = {line.split(" ", 1)[0].split("(", 1)[0] for line in dictionary.splitlines()}
    assert spoken - said == set()
    assert len(names.FIRST_NAMES) == 1_500 and len(names.SURNAMES) == 2_500
    assert "double <digit>" in grammars.phone_jsgf() and "oh" in grammars.phone_jsgf()


def _spoken_booking() -> Slots:
    slots = Slots(spoken=True)
    slots.absorb(parse("book a table for 4 tomorrow at 7 pm", TODAY))
    return slots


def test_a_spoken_booking_asks_one_thing_at_a_time_and_listens_for_it() -> None:
    slots = _spoken_booking()
    assert decide(slots, TOOLS) == Say("What name should I put the booking under?", "name")
    slots.absorb(answer_of(parse("Nancy Whitfield", TODAY), "Nancy Whitfield", "name", slots))
    assert decide(slots, TOOLS) == Say("What phone number?", "phone")


def test_the_host_reads_back_and_books_only_after_a_yes() -> None:
    slots = _spoken_booking()
    slots.absorb(parse("my name is Nancy Whitfield phone 98207272", TODAY))
    first = decide(slots, TOOLS)
    assert isinstance(first, Say) and first.listen == "confirm"
    assert "Nancy Whitfield, N A N C Y, W H I T F I E L D, phone 9 8 2 0, 7 2 7 2" in first.text

    slots.absorb(parse("no it's 98207273", TODAY))  # a correction is read back again
    again = decide(slots, TOOLS)
    assert isinstance(again, Say) and "7 2 7 3" in again.text

    slots.absorb(parse("no", TODAY))  # a bare no: the host asks what is right
    assert decide(slots, TOOLS) == Say(WHAT_IS_RIGHT, "confirm")

    slots.absorb(parse("yes", TODAY))
    call = decide(slots, TOOLS)
    assert isinstance(call, Call) and call.arguments["phone_number"] == "98207273"


def test_typed_bookings_are_not_read_back() -> None:
    slots = Slots()
    slots.absorb(parse("book a table for 4 tomorrow at 7 pm, my name is Ada Lovelace", TODAY))
    slots.absorb(parse("phone 98207272", TODAY))
    assert isinstance(decide(slots, TOOLS), Call)


def test_a_name_not_heard_is_asked_for_letter_by_letter() -> None:
    talk = Conversation(model="gpt-realtime", stats=Stats(), today=lambda: TODAY, listen=True)
    talk.handle({"type": p.SESSION_UPDATE, "session": {"type": "realtime", "tools": []}})
    silence = base64.b64encode(bytes(9600)).decode()  # 200 ms of PCM16 at 24 kHz

    def turn(words: str, heard_as: str) -> tuple[str, Say]:
        """One committed utterance heard as ``words``: what it was listened for, the reply."""
        talk.handle({"type": p.INPUT_AUDIO_APPEND, "audio": silence})
        job = next(
            o for o in talk.handle({"type": p.INPUT_AUDIO_COMMIT}) if isinstance(o, Transcribe)
        )
        talk.handle({"type": p.RESPONSE_CREATE})  # waits for the words
        run = next(
            o for o in talk.transcribed(job.item_id, words, heard_as) if isinstance(o, ResponseRun)
        )
        list(run.steps())
        assert isinstance(run.plan, Say)
        return job.listen, run.plan

    assert turn("book a table for 4 tomorrow at 7 pm", "general") == (
        "general",
        Say("What name should I put the booking under?", "name"),
    )
    assert turn("the", "general") == ("name", Say(SPELL_IT, "spelling"))
    assert turn("Whitfield", "spelling") == ("spelling", Say("What phone number?", "phone"))
    assert talk.slots.name == "Whitfield"
