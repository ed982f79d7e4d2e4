"""Log lines: JSON or text, the call's session id on each, phone numbers masked."""

import json
import logging

import pytest

from server.logs import JsonFormatter, TextFormatter, _Context, mask_phones, session_id


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "GET /api/reservations/%2B6598207272 HTTP/1.1",
            "GET /api/reservations/******7272 HTTP/1.1",
        ),
        ("phone +65 9820-7272 ok", "phone ******7272 ok"),
        ("call 98207272.", "call ****7272."),
        ("(415) 555-2671", "(******2671"),
        ("date 2026-11-25 at 19:00", "date 2026-11-25 at 19:00"),
        ("127.0.0.1:59976 - POST", "127.0.0.1:59976 - POST"),
        ("took 12345678.5 ms, 1893 tokens", "took 12345678.5 ms, 1893 tokens"),
    ],
)
def test_mask_phones(text, masked):
    assert mask_phones(text) == masked


def record(msg: str, *args, name: str = "server.relay") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)


def test_json_line_carries_the_session_and_masks_arguments():
    token = session_id.set("s42")
    try:
        entry = record("booked %s", "+6598207272")
        assert _Context().filter(entry)
    finally:
        session_id.reset(token)
    line = json.loads(JsonFormatter().format(entry))
    assert line["session"] == "s42"
    assert line["msg"] == "booked ******7272"
    assert line["level"] == "info" and line["logger"] == "server.relay"


def test_lines_outside_a_call_have_no_session_and_uvicorn_is_named_plainly():
    entry = record("Application startup complete.", name="uvicorn.error")
    _Context().filter(entry)
    line = json.loads(JsonFormatter().format(entry))
    assert "session" not in line and line["logger"] == "uvicorn"
    assert " uvicorn: Application startup complete." in TextFormatter().format(entry)
