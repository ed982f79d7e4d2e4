"""A call's record from the core's notes, without I/O: outcome rules, cost, transcript, limits."""

from __future__ import annotations

import orjson
import pytest

from server.realtime.session import Note
from server.records import summary
from server.records.summary import CallLog, Prices

PRICES = Prices(
    text_in=4, text_in_cached=0.4, text_out=16, audio_in=32, audio_in_cached=0.4, audio_out=64
)


def tool(name: str, event_type: str | None, ok: bool = True, **event: object) -> Note:
    page_event = {"type": event_type, **event} if event_type else None
    output = {"ok": ok} if ok else {"ok": False, "error": "reservation_exists"}
    return Note(
        "tool",
        {
            "name": name,
            "arguments": '{"phone_number": "81234567"}',
            "output": orjson.dumps(output).decode(),
            "ok": ok,
            "ms": 12.34,
            "page_event": page_event,
        },
    )


def new_log(**kw: object) -> CallLog:
    return CallLog(id="x", sid="s1", channel="sdk", caller=None, started_at=100.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "outcome"),
    [
        ([], "none"),
        (["availability.checked"], "none"),
        (["reservation.not_found"], "looked_up"),
        (["reservation.failed", "reservation.confirmed"], "booked"),
        (["reservation.confirmed", "reservation.failed"], "booked"),
        (["reservation.found", "reservation.failed"], "failed"),
        (["reservation.failed", "reservation.found"], "failed"),
        (["reservation.confirmed", "reservation.cancelled"], "cancelled"),
        (["reservation.found", "reservation.changed"], "changed"),
    ],
)
def test_the_outcome_is_the_most_telling_result(events, outcome):
    log = new_log()
    for n, kind in enumerate(events):
        log.note(tool("some_tool", kind), 100.0 + n)
    assert log.outcome == outcome


def test_the_confirmation_number_is_the_one_of_the_deciding_result():
    log = new_log()
    log.note(tool("lookup_reservation", "reservation.found", confirmation_number="AAAAAA"), 101)
    assert log.confirmation_number == "AAAAAA"
    log.note(
        tool("make_reservation", "reservation.confirmed", reservation={"confirmation_number": "B"}),
        102,
    )
    assert log.confirmation_number == "B"
    log.note(tool("make_reservation", "reservation.failed", ok=False), 103)
    assert (log.outcome, log.confirmation_number) == ("booked", "B")


def test_usage_is_priced_per_modality_with_cached_input_split_out():
    usage = {
        "total_tokens": 1_300,
        "input_tokens": 1_000,
        "output_tokens": 300,
        "input_token_details": {
            "text_tokens": 400,
            "audio_tokens": 600,
            "cached_tokens": 250,
            "cached_tokens_details": {"text_tokens": 200, "audio_tokens": 50},
        },
        "output_token_details": {"text_tokens": 100, "audio_tokens": 200},
    }
    log = new_log()
    log.note(Note("usage", usage), 101)
    log.note(Note("usage", usage), 102)
    assert log.usage == {
        "input_text": 800,
        "input_audio": 1200,
        "input_cached_text": 400,
        "input_cached_audio": 100,
        "output_text": 200,
        "output_audio": 400,
    }
    expected = (400 * 4 + 400 * 0.4 + 1100 * 32 + 100 * 0.4 + 200 * 16 + 400 * 64) / 1e6
    assert log.cost(PRICES) == pytest.approx(expected, abs=1e-6)


def test_cached_tokens_without_details_count_as_text_first():
    counts = summary.usage_counts(
        {"input_token_details": {"text_tokens": 10, "audio_tokens": 90, "cached_tokens": 30}}
    )
    assert (counts["input_cached_text"], counts["input_cached_audio"]) == (10, 20)


def test_the_transcript_keeps_turns_and_tool_calls_in_order_with_times():
    log = new_log()
    log.note(Note("turn", {"role": "caller", "text": "A table for two"}), 101.5)
    log.note(tool("make_reservation", "reservation.confirmed", confirmation_number="C3"), 102.0)
    log.note(Note("turn", {"role": "host", "text": "Booked, C3."}), 102.25)
    log.note(Note("reply_latency", {"ms": 300.0}), 102.3)
    log.note(Note("reply_latency", {"ms": 500.0}), 103)
    log.note(Note("reply_latency", {"ms": 400.0}), 104)
    log.note(Note("first_audio", {"ms": 800.0}), 101)
    log.end(105.0, "caller left")
    row = log.row(PRICES)
    assert [(e["role"], e["at_s"]) for e in row["transcript"]] == [
        ("caller", 1.5),
        ("tool", 2.0),
        ("host", 2.25),
    ]
    assert row["transcript"][1]["name"] == "make_reservation"
    assert row["transcript"][1]["output"] == '{"ok":true}'
    assert row["tool_calls"] == [{"name": "make_reservation", "ok": True, "ms": 12.3, "at_s": 2.0}]
    assert (row["reply_count"], row["reply_latency_p50_ms"], row["reply_latency_max_ms"]) == (
        3,
        400.0,
        500.0,
    )
    assert row["first_audio_ms"] == 800.0
    assert (row["status"], row["ended_at"], row["end_reason"]) == ("ended", 105.0, "caller left")


def test_no_transcript_is_kept_when_retention_is_zero():
    log = new_log(keep_transcript=False)
    log.note(Note("turn", {"role": "caller", "text": "hello"}), 101)
    log.note(tool("lookup_reservation", "reservation.not_found"), 102)
    row = log.row(PRICES)
    assert row["transcript"] is None
    assert row["outcome"] == "looked_up" and len(row["tool_calls"]) == 1


def test_a_long_call_keeps_a_bounded_transcript_and_says_what_it_left_out():
    log = new_log()
    for n in range(summary.TRANSCRIPT_LIMIT + 7):
        log.note(Note("turn", {"role": "caller", "text": "x" * 10_000}), 100 + n)
    row = log.row(PRICES)
    assert len(row["transcript"]) == summary.TRANSCRIPT_LIMIT + 1
    assert row["transcript"][-1] == {"role": "note", "text": "7 more entries"}
    assert len(row["transcript"][0]["text"]) == summary.TEXT_LIMIT + 1


def test_dirty_tracks_changes_since_the_last_write():
    log = new_log()
    log.dirty = False
    log.note(Note("refused", {"code": "invalid_json"}), 101)  # metrics only
    assert not log.dirty
    log.note(Note("turn", {"role": "caller", "text": "hi"}), 101)
    assert log.dirty
