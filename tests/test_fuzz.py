"""Property-based fuzzing of every door into the server, over real loopback connections.

- REST: random JSON, right keys with wrong/huge/unicode/SQL-looking values, invalid UTF-8 and
  valid-looking bookings are POSTed; fuzzed path segments are GETted.
- The OpenAPI contract: schemathesis generates requests from the live `/openapi.json`.
- The realtime relay: one WebSocket session takes every kind of broken frame and must answer each
  refusal with a specific `error`, stay alive, and still book a table at the end.
- The model's tool arguments: every answer is a valid `function_call_output`.

The contract: bad input is refused with a specific error -- never a 500, a crashed or hung
session, nor a non-specific error -- and nothing a caller sends corrupts the reservations table.

Hypothesis drives async properties in two ways: `@given` on an `async def` test (pytest-asyncio
runs each example on the session loop, where the live server runs too), and `drive()` when one
WebSocket must outlive every example: it runs a sync `@given` property in a worker thread and
each example as a coroutine on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx
import orjson
import phonenumbers
import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import realtime as p
from server.book.models import MAX_OTHER_INFO_BYTES
from tools import ToolContext, default_registry

FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # fixtures are shared by the examples on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
TIMEOUT = 15

POST_STATUSES = {200, 201, 400, 409, 413, 422}
GET_STATUSES = {200, 404, 422}
# An error code that says nothing about what was wrong with the input.
GENERIC_CODES = {"", "error", "internal_error", "server_error", "unknown_error", "relay_error"}
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
CONFIRMATION = re.compile(r"^[2-9A-HJKMNP-Z]{6}$")
BOOKING_KEYS = (
    "name",
    "phone_number",
    "reservation_date",
    "reservation_time",
    "party_size",
    "other_info",
)

SQL = [
    "'; DROP TABLE reservations; --",
    "Robert'); DROP TABLE reservations;--",
    "1' OR '1'='1",
    "' OR 1=1; TRUNCATE reservations; --",
    "$1; DELETE FROM reservations",
    "$$; UPDATE reservations SET party_size = 99; $$",
    "\\'; SELECT pg_sleep(30); --",
    "' UNION SELECT phone_number, name FROM reservations --",
    '"; DROP TABLE schema_migrations; --',
    "1; COPY reservations TO '/tmp/x'",
]
UNICODE = [
    "\u202eevil override",
    "Z̸̡̢͉a̴l̷g̶o̵ ̷t̸e̴x̶t̵",
    "😀" * 40,
    "\ufeffBOM",
    "\u200b\u200c\u200d",
    "𝕬𝖉𝖆 𝕷𝖔𝖛𝖊𝖑𝖆𝖈𝖊",
    "ﷺ ǅ ß ﬀ İ",
    "\U0010ffff\U000e0001",
    "٩٨٢٠٧٢٧٢",
    "８１２３４５６７",
    "\x00",
    "nul\x00inside",
    "\x1b[31mred\x1b[0m",
    "\r\n\t ",
]
INVALID_UTF8 = [
    b"\xff",
    b"\xff\xfe\xfd",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b'{"name": "\xc0\xaf"}',
    b'{"type": "session.update\xff"}',
]
# Valid UTF-8, but JSON that names a lone surrogate: no string can hold it.
ESCAPED_SURROGATES = [
    '{"name": "\\ud800"}',
    '{"type": "session.update", "event_id": "\\udc00"}',
    '"\\udfff\\ud800"',
]
# Valid numbers in the shapes callers type them (the default region is SG: 8 digits, no +65).
VALID_PHONES = [
    "8123 4567",
    "+65 9820 7272",
    "6591234567",
    "9123-4567",
    "+6581234568",
    "(+65) 9876-5432",
    "+1 415 555 2671",
]

# --- strategies -------------------------------------------------------------------------------


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def huge_text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Long strings built by repetition: cheap to generate at any size."""
    return st.builds(_repeat, st.text(min_size=1, max_size=6), st.integers(min_size, max_size))


def weighted(*branches: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """`one_of` with weights. Plain `one_of` favours the branches with more distinct values,
    since Hypothesis avoids repeating an example."""
    return st.sampled_from([s for weight, s in branches for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


def good_or_wrong(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return weighted((1, good), (1, wrong))


def rarely(extra: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Usually nothing, sometimes `extra`: keys the relay refuses, hiding the rest of the event."""
    return weighted((4, st.just({})), (1, extra))


texts = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(min_codepoint=0x80, codec="utf-8"), max_size=30),
    st.sampled_from(SQL),
    st.sampled_from(UNICODE),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4),
    max_leaves=12,
)
# Values that are wrong for any one field: right-looking types too, since they may be wrong there.
wrong = st.one_of(json_values, texts, huge_text(101, 5_000))


def dumps(value: Any, style: str = "spaced") -> str:
    """JSON text in the three shapes clients send (python's json: ints beyond 64 bits too)."""
    if style == "compact":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value, ensure_ascii=style == "ascii")


styles = st.sampled_from(["compact", "spaced", "ascii"])


def days_ahead(days: int) -> str:
    return (dt.date.today() + dt.timedelta(days=days)).isoformat()


dates = st.one_of(
    st.integers(-3, 400).map(days_ahead),
    st.dates().map(dt.date.isoformat),
    st.sampled_from(["2026-02-30", "2026-13-01", "26-12-24", "24/12/2026", "tomorrow", ""]),
)
times = st.one_of(
    st.builds("{:02d}:{:02d}".format, st.integers(0, 23), st.integers(0, 59)),
    st.sampled_from(["24:00", "7pm", "19:60", "19:30:00", "1930", " 19:30", "-1:30"]),
)
safe_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]))
good_names = st.one_of(
    st.from_regex(r"\A[A-Za-z][A-Za-z '\-]{0,40}\Z"),
    st.sampled_from(SQL),
    st.sampled_from([u for u in UNICODE if "\x00" not in u and u.strip()]),
)
small_info = st.dictionaries(
    safe_text.filter(lambda s: len(s) <= 12),
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.sampled_from(SQL),
    max_size=3,
)
valid_bookings = st.fixed_dictionaries(
    {
        "name": good_names,
        "phone_number": st.sampled_from(VALID_PHONES),
        # Two days on at least: not in the past in any timezone the restaurant may be in.
        "reservation_date": st.integers(2, 365).map(days_ahead),
        "reservation_time": st.builds(
            "{:02d}:{:02d}".format, st.integers(0, 23), st.integers(0, 59)
        ),
        "party_size": st.integers(1, 20),
        "other_info": small_info,
    }
)
field_values: dict[str, st.SearchStrategy[Any]] = {
    "name": good_or_wrong(good_names | st.text(max_size=120)),
    "phone_number": good_or_wrong(
        st.sampled_from(VALID_PHONES) | st.from_regex(r"\A\+?[0-9 ()\-]{0,20}\Z")
    ),
    "reservation_date": good_or_wrong(dates),
    "reservation_time": good_or_wrong(times),
    "party_size": good_or_wrong(st.integers(-5, 30) | st.integers()),
    "other_info": good_or_wrong(
        small_info | st.dictionaries(texts, json_values, max_size=5) | huge_text(4000, 9000)
    ),
}
# The right keys, any of them missing, each value right or wrong, sometimes extra keys.
wrong_bookings = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({}, optional=field_values),
    st.dictionaries(texts, json_values, max_size=2) | st.just({}),
)


def _with_deep_other_info(booking: dict[str, Any], depth: int) -> bytes:
    """A booking whose other_info nests `depth` lists: deeper than orjson writes (255)."""
    text = json.dumps({**booking, "other_info": {"x": "@@"}})
    return text.replace('"@@"', "[" * depth + "]" * depth).encode()


def _huge_field(booking: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    return {**booking, key: value}


# (kind, body bytes): "valid" bookings must be accepted (or be a conflict); the rest may be refused.
post_bodies = weighted(
    (
        3,
        st.tuples(
            st.just("valid"), st.builds(lambda b, s: dumps(b, s).encode(), valid_bookings, styles)
        ),
    ),
    (
        3,
        st.tuples(
            st.just("wild"), st.builds(lambda b, s: dumps(b, s).encode(), wrong_bookings, styles)
        ),
    ),
    (1, st.tuples(st.just("wild"), json_values.map(lambda v: dumps(v).encode()))),
    (
        1,
        st.tuples(
            st.just("wild"),
            st.builds(
                lambda b, k, v: dumps(_huge_field(b, k, v)).encode(),
                valid_bookings,
                st.sampled_from(BOOKING_KEYS),
                huge_text(1_000, 40_000),
            ),
        ),
    ),
    (
        1,
        st.tuples(
            st.just("wild"),
            st.builds(_with_deep_other_info, valid_bookings, st.integers(1, 1100)),
        ),
    ),
    (
        2,
        st.tuples(
            st.just("wild"),
            st.one_of(
                st.binary(max_size=300),
                st.sampled_from(INVALID_UTF8),
                st.sampled_from(ESCAPED_SURROGATES).map(str.encode),
                st.builds(
                    lambda b, cut: dumps(b).encode()[:cut], valid_bookings, st.integers(0, 200)
                ),
                texts.map(str.encode),
            ),
        ),
    ),
)


def _booking(settings, days: int = 3, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Ada Lovelace",
        "phone_number": "9820 7272",
        "reservation_date": (settings.today() + dt.timedelta(days=days)).isoformat(),
        "reservation_time": "19:30",
        "party_size": 4,
        "other_info": {},
    }
    body.update(overrides)
    return body


_BASE = {
    "name": "Ada",
    "phone_number": "+6598207272",
    "reservation_date": days_ahead(5),
    "reservation_time": "19:30",
    "party_size": 2,
}
# Bodies the server once got wrong: four 500s, and other_info keys stripped of their spaces
# ({" a ": 1, "a": 2} was stored as {"a": 2}).
REGRESSIONS = [
    ("wild", json.dumps({**_BASE, "name": "A\x00da"}).encode()),  # text cannot hold NUL
    ("wild", json.dumps({**_BASE, "other_info": {"notes": "a\x00b"}}).encode()),  # nor jsonb
    ("wild", json.dumps({**_BASE, "other_info": {"k\x00": 1}}).encode()),
    ("wild", _with_deep_other_info(_BASE, 300)),  # orjson.loads reads it, orjson.dumps cannot
    ("valid", json.dumps({**_BASE, "other_info": {" a ": 1, "a": 2, "\n": 3}}).encode()),
]


# --- assertions -------------------------------------------------------------------------------


def assert_specific_error(error: Any, context: Any) -> None:
    assert isinstance(error, dict), context
    code, message = error.get("code"), error.get("message")
    assert isinstance(code, str) and code not in GENERIC_CODES, context
    assert isinstance(message, str) and message.strip(), context


def assert_json_answer(response: httpx.Response, allowed: set[int]) -> Any:
    """Status in `allowed`, a JSON body, and on refusals the documented error shape."""
    request = response.request
    context = (request.method, str(request.url)[:200], request.content[:300], response.text[:500])
    assert response.status_code in allowed, (response.status_code, *context)
    assert response.headers["content-type"] == "application/json", context
    data = response.json()
    if response.status_code >= 400:
        assert set(data) == {"error"}, context
        error = data["error"]
        assert_specific_error(error, context)
        fields = error["fields"]
        assert isinstance(fields, dict), context
        assert all(isinstance(v, str) and v for v in fields.values()), context
        if response.status_code == 422:
            assert fields, context
    return data


def assert_reservation(data: Any) -> None:
    assert E164.match(data["phone_number"]), data
    assert phonenumbers.is_valid_number(phonenumbers.parse(data["phone_number"]))
    assert 1 <= len(data["name"]) <= 100 and data["name"].strip() == data["name"]
    assert 1 <= data["party_size"] <= 20 and type(data["party_size"]) is int
    assert CONFIRMATION.match(data["confirmation_number"])
    assert re.fullmatch(r"[0-2][0-9]:[0-5][0-9]", data["reservation_time"])
    dt.date.fromisoformat(data["reservation_date"])
    assert isinstance(data["other_info"], dict)


async def assert_table_intact(pool, confirmed: set[str]) -> None:
    """The table exists, every row keeps the rules, and holds exactly the bookings we were given."""
    assert await pool.fetchval("SELECT to_regclass('public.reservations')") is not None
    assert await pool.fetchval("SELECT to_regclass('public.schema_migrations')") is not None
    rows = await pool.fetch("SELECT * FROM reservations")
    for row in rows:
        assert_reservation(
            {
                **dict(row),
                "reservation_time": f"{row['reservation_time']:%H:%M}",
                "reservation_date": row["reservation_date"].isoformat(),
            }
        )
        assert len(orjson.dumps(row["other_info"])) <= MAX_OTHER_INFO_BYTES
    assert {row["confirmation_number"] for row in rows} == confirmed


# --- REST -------------------------------------------------------------------------------------


@pytest.fixture
async def http(live_server, pool):
    async with httpx.AsyncClient(base_url=live_server.url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
def confirmed() -> set[str]:
    """Confirmation numbers of the 201s this test received: the table must hold exactly these."""
    return set()


@settings(FUZZ, max_examples=200)
@given(body=post_bodies)
@example(body=REGRESSIONS[0])
@example(body=REGRESSIONS[1])
@example(body=REGRESSIONS[2])
@example(body=REGRESSIONS[3])
@example(body=REGRESSIONS[4])
async def test_post_bodies_never_fail_and_never_corrupt(http, pool, confirmed, body):
    kind, content = body
    response = await http.post(
        "/api/reservations", content=content, headers={"content-type": "application/json"}
    )
    data = assert_json_answer(response, POST_STATUSES)
    if response.status_code in (200, 201):
        assert_reservation(data)
    if response.status_code == 201:
        confirmed.add(data["confirmation_number"])
    if kind == "valid":
        sent = json.loads(content)
        assert response.status_code in (200, 201, 409), (response.status_code, data)
        if response.status_code == 201:  # stored as sent, SQL-looking text included
            assert data["name"] == sent["name"].strip()
        if response.status_code in (200, 201):  # 200: the identical booking, already held
            assert data["other_info"] == sent["other_info"]
            assert data["reservation_date"] == sent["reservation_date"]
            assert data["reservation_time"] == sent["reservation_time"]
            assert data["party_size"] == sent["party_size"]
    await assert_table_intact(pool, confirmed)


def quote_segment(raw: str | bytes) -> str:
    """Percent-encode every byte a path segment could misuse, dots included (no `..`)."""
    quoted = quote_from_bytes(raw, safe="") if isinstance(raw, bytes) else quote(raw, safe="")
    return quoted.replace(".", "%2E")


path_segments = st.one_of(
    st.text(max_size=60),
    texts,
    st.binary(max_size=40),
    st.sampled_from(INVALID_UTF8),
    st.sampled_from(VALID_PHONES),
    st.from_regex(r"\A\+?[0-9 ()\-]{1,20}\Z"),
    huge_text(41, 2_000),
).map(quote_segment)


@pytest.fixture
async def seeded(http, settings) -> str:
    response = await http.post(
        "/api/reservations", json=_booking(settings, phone_number="8123 4567")
    )
    assert response.status_code == 201
    return response.json()["phone_number"]


@settings(FUZZ, max_examples=100)
@given(segment=path_segments)
@example(segment=quote_segment("8123 4567"))
@example(segment=quote_segment("'; DROP TABLE reservations; --"))
async def test_get_with_fuzzed_path(http, pool, seeded, segment):
    response = await http.get(f"/api/reservations/{segment}")
    data = assert_json_answer(response, GET_STATUSES)
    if response.status_code == 200:
        assert data["phone_number"] == seeded
    elif response.status_code == 404:
        assert data["error"]["code"] == "reservation_not_found"
    else:
        assert data["error"]["code"] == "invalid_phone_number"
        assert set(data["error"]["fields"]) == {"phone_number"}
    assert await pool.fetchval("SELECT count(*) FROM reservations") == 1


# --- schemathesis against /openapi.json -------------------------------------------------------


def _schemathesis(base_url: str, max_examples: int) -> list[str]:
    """Generate cases for every operation from the served schema, send them, run the checks.

    Sync (schemathesis sends with `requests`), so it runs in a worker thread while the event loop
    keeps serving. Bodies are also generated to break the schema (negative mode), and those must
    be refused; a string path parameter has no invalid form, so GET runs positive cases only.
    Returns "LABEL mode" for every run.
    """
    import requests
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    # The staff routes answer loopback clients without a token when STAFF_TOKEN is unset (as
    # here): a case "negative" only for its missing Authorization is rightly accepted, so the
    # security parameters are left out and the negative cases break the request itself. A body
    # over 16 KB (long lists of long strings) is refused too, with 413.
    rejected = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5XX"]
    config = schemathesis.Config.from_dict(
        {
            "generation": {"with-security-parameters": False},
            "checks": {"negative_data_rejection": {"expected-statuses": rejected}},
        }
    )
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", config=config, timeout=TIMEOUT
    )
    session = requests.Session()

    def run(operation: Any, mode: GenerationMode, run_checks: list[Any]) -> None:
        @settings(FUZZ, max_examples=max_examples)
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call(base_url=base_url, session=session, timeout=TIMEOUT)
            case.validate_response(response, checks=run_checks)

        check()

    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/reservations/events":
            continue  # a stream that never ends by itself: tests/test_staff_feed.py covers it
        run(operation, GenerationMode.POSITIVE, checks)
        ran.append(f"{operation.label} positive")
        if operation.body:
            run(operation, GenerationMode.NEGATIVE, [*checks, negative_data_rejection])
            ran.append(f"{operation.label} negative")
    session.close()
    return ran


async def test_schemathesis_against_the_served_openapi(live_server, pool):
    ran = await asyncio.to_thread(_schemathesis, live_server.url, 30)
    assert set(ran) == {
        "POST /api/reservations positive",
        "POST /api/reservations negative",
        "GET /api/reservations/{phone_number} positive",
        "GET /api/reservations positive",
        "GET /api/reservations/{phone_number}/history positive",
        "PATCH /api/reservations/{phone_number} positive",
        "PATCH /api/reservations/{phone_number} negative",
        "DELETE /api/reservations/{phone_number} positive",
        "GET /api/calls positive",
        "GET /api/calls/{call_id} positive",
        "GET /api/messages positive",
        "GET /api/restaurant positive",
        "PUT /api/restaurant positive",
        "PUT /api/restaurant negative",
        "GET /api/restaurant/conflicts positive",
        "GET /api/availability positive",
        "GET /api/availability/check positive",
    }
    rows = await pool.fetch("SELECT phone_number, party_size FROM reservations")
    assert all(E164.match(r["phone_number"]) and 1 <= r["party_size"] <= 20 for r in rows)


# --- the realtime relay -----------------------------------------------------------------------


async def drive(
    prop: Callable[[Any], Awaitable[None]],
    strategy: st.SearchStrategy[Any],
    max_examples: int,
    examples: tuple[Any, ...] = (),
) -> None:
    """Run the async property `prop` over Hypothesis examples, each on this event loop.

    Hypothesis runs in a worker thread, so the loop -- which also serves the live server -- keeps
    running while it waits for each example. `examples` always run first.
    """
    loop = asyncio.get_running_loop()

    def property_(value: Any) -> None:
        asyncio.run_coroutine_threadsafe(prop(value), loop).result(timeout=TIMEOUT * 2)

    for value in reversed(examples):
        property_ = example(value)(property_)
    test = settings(FUZZ, max_examples=max_examples)(given(strategy)(property_))
    await asyncio.to_thread(test)


event_ids = st.one_of(st.text(max_size=20), json_values)


def _user_text(text: str) -> dict[str, Any]:
    return {
        "type": p.ITEM_CREATE,
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def event(kind: st.SearchStrategy[Any], fields: dict[str, st.SearchStrategy[Any]]):
    """A client event: `type` first (as clients send it), the given fields, maybe an event_id."""
    return st.builds(
        lambda t, f, e: {"type": t, **f, **e},
        kind,
        st.fixed_dictionaries({}, optional=fields),
        st.fixed_dictionaries({}, optional={"event_id": event_ids}),
    )


content_parts = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_text", "input_audio", "text", "output_text"]) | wrong},
        optional={"text": texts | wrong, "audio": wrong},
    ),
)
user_items = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["message", "function_call_output", "function_call"]) | wrong,
        "role": st.sampled_from(["user", "assistant", "system"]) | wrong,
        "content": st.lists(content_parts, max_size=3) | wrong,
        "id": wrong,
        "call_id": wrong,
        "output": wrong,
    },
)


vad_values: dict[str, st.SearchStrategy[Any]] = {
    "threshold": st.floats(-1, 2) | st.integers(-1, 2),
    "prefix_padding_ms": st.integers(-100, 5_000),
    "silence_duration_ms": st.integers(-100, 5_000),
    "idle_timeout_ms": st.none() | st.integers(-100, 60_000),
    "create_response": st.booleans(),
    "interrupt_response": st.booleans(),
    "eagerness": st.sampled_from(["low", "medium", "high", "auto", "max"]),
}
turn_detections = weighted(
    (1, st.none()),
    (1, json_values),
    (
        6,
        st.builds(
            lambda kind, values, extra: {"type": kind, **values, **extra},
            weighted((4, st.sampled_from(["server_vad", "semantic_vad"])), (1, wrong)),
            st.fixed_dictionaries(
                {}, optional={k: good_or_wrong(v) for k, v in vad_values.items()}
            ),
            rarely(st.dictionaries(texts, json_values, min_size=1, max_size=1)),
        ),
    ),
)
audio_input = st.builds(
    lambda known, extra: {**known, **extra},
    st.fixed_dictionaries(
        {},
        optional={
            "turn_detection": turn_detections,
            "noise_reduction": weighted(
                (1, st.none()),
                (2, st.sampled_from([{"type": "near_field"}, {"type": "far_field"}])),
                (1, json_values),
            ),
        },
    ),
    rarely(
        st.dictionaries(
            st.sampled_from(["transcription", "format"]), json_values, min_size=1, max_size=1
        )
    ),
)
audio_output = st.fixed_dictionaries(
    {},
    optional={"voice": st.sampled_from(["cedar", "marin", "nobody"]) | wrong, "speed": wrong},
)


def _turn_detection_only(setting: Any) -> dict[str, Any]:
    return {"type": "realtime", "audio": {"input": {"turn_detection": setting}}}


sessions = st.one_of(
    wrong,
    st.fixed_dictionaries(
        {
            "audio": st.fixed_dictionaries(
                {}, optional={"input": audio_input | wrong, "output": audio_output | wrong}
            )
            | wrong
        },
        optional={"type": st.just("realtime") | wrong},
    ),
    st.fixed_dictionaries(  # what only the server may set
        {},
        optional={
            "type": st.just("realtime"),
            "instructions": texts,
            "tools": json_values,
            "model": texts,
            "output_modalities": json_values,
        },
    ),
)
audio_payloads = st.one_of(
    st.binary(max_size=4_800).map(lambda b: base64.b64encode(b).decode()),
    texts,
    wrong,
)
allowed_events = weighted(
    (1, event(st.just(p.SESSION_UPDATE), {"session": sessions})),
    (
        2,
        event(
            st.just(p.SESSION_UPDATE),
            {"session": st.builds(_turn_detection_only, turn_detections)},
        ),
    ),
    (
        1,
        event(  # the fields a client may set, with any values
            st.just(p.SESSION_UPDATE),
            {
                "session": st.fixed_dictionaries(
                    {"audio": st.fixed_dictionaries({"input": audio_input, "output": audio_output})}
                )
            },
        ),
    ),
    (2, event(st.just(p.ITEM_CREATE), {"item": user_items | wrong})),
    (1, st.builds(_user_text, texts | huge_text(100, 5_000))),  # well-formed, odd words
    (
        1,
        event(
            st.just(p.RESPONSE_CREATE),
            {
                "response": st.dictionaries(
                    st.sampled_from(["metadata", "output_modalities", "instructions", "tools"]),
                    json_values,
                    max_size=2,
                )
                | wrong
            },
        ),
    ),
    (1, event(st.just(p.INPUT_AUDIO_APPEND), {"audio": audio_payloads})),
    (
        1,
        event(
            st.just(p.ITEM_TRUNCATE),
            {"item_id": wrong, "content_index": wrong, "audio_end_ms": wrong},
        ),
    ),
    (
        1,
        event(st.sampled_from([p.RESPONSE_CANCEL, p.INPUT_AUDIO_COMMIT]), {"response_id": wrong}),
    ),
)
other_types = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "conversation.item.delete",
            "conversation.item.retrieve",
            "transcription_session.update",
            "output_audio_buffer.clear",
            "session.created",
            "response.done",
            "error",
            "reservation.confirmed",
            "SESSION.UPDATE",
            " session.update",
            "session.update\x00",
            "input_audio_buffer.append ",
        ]
    ),
)
random_events = st.builds(
    lambda t, f: {"type": t, **f},
    other_types | wrong,
    st.dictionaries(texts, json_values, max_size=3),
)


def _huge_user_text(size: int, unit: str) -> dict[str, Any]:
    return {
        "type": p.ITEM_CREATE,
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": _repeat(unit, size)}],
        },
    }


APPEND_PREFIX = '{"type":"input_audio_buffer.append"'
allowed_frames = st.builds(dumps, allowed_events, styles)
huge_frames = st.one_of(
    st.builds(
        dumps,
        st.builds(
            _huge_user_text,
            st.sampled_from([20_000, 150_000, 262_000, 262_145, 300_000]),
            st.sampled_from(["a", "😀", "é", "'; DROP TABLE reservations; -- ", "\u202e"]),
        ),
    ),
    huge_text(1_000, 300_000),
)
binary_frames = st.one_of(
    st.binary(max_size=2_000),  # mostly invalid UTF-8
    st.sampled_from(INVALID_UTF8),
    st.builds(lambda v: dumps(v).encode(), allowed_events),  # a good event, but binary
)
frames = weighted(
    (8, allowed_frames),
    (2, st.builds(dumps, random_events, styles)),
    (1, st.builds(dumps, json_values, styles)),
    (1, texts | st.sampled_from(ESCAPED_SURROGATES)),  # mostly not JSON
    (1, st.builds(lambda v, cut: dumps(v)[:cut], allowed_events, st.integers(0, 60))),
    (1, st.builds(lambda tail: APPEND_PREFIX + tail, texts)),  # the relay's audio fast path
    (1, huge_frames),
    (2, binary_frames),
)


def expected_refusal(frame: str | bytes, limit: int) -> str | None:
    """The error code the relay must answer `frame` with, when the protocol decides it alone."""
    if isinstance(frame, bytes):
        return "binary_not_supported"
    if len(frame) > limit:
        return "frame_too_large"
    if frame.startswith(APPEND_PREFIX):
        return None  # forwarded as audio without parsing; the model judges it
    try:
        parsed = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return "invalid_json"
    if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
        return "invalid_event"
    if parsed["type"] not in p.CLIENT_ALLOWED:
        return "event_not_allowed"
    return None


_CANCEL = {"type": p.RESPONSE_CANCEL}


def json_text(event: dict[str, Any]) -> str:
    """An event as a text frame (bytes would go out as a binary frame)."""
    return orjson.dumps(event).decode()


def _event_id(frame: str | bytes) -> str | None:
    try:
        parsed = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    event_id = parsed.get("event_id") if isinstance(parsed, dict) else None
    return event_id if isinstance(event_id, str) else None


class Probe:
    """One fuzzed session: sends frames, validates every event, proves the session is alive."""

    def __init__(self, ws: websockets.ClientConnection, limit: int, events_per_s: float | None):
        self.ws = ws
        self.limit = limit
        # Two events per frame (the frame and the marker), kept under the relay's rate limit:
        # a rate-limited marker is dropped, and would look like a hung session.
        self.interval = 2.5 / events_per_s if events_per_s else 0.0
        self._last_send = 0.0
        self.oversized = 0
        self.frames = 0
        self.codes: dict[str, int] = {}
        self.last_frame: str | bytes = ""
        self._marker = f"fuzz-alive-{secrets.token_hex(4)}"
        self._markers = 0

    async def next(self) -> dict[str, Any]:
        """The next event; a close here means the session died."""
        try:
            raw = await self.ws.recv()
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            frame = self.last_frame[:300]
            raise AssertionError(f"session closed ({code}) after {frame!r}") from None
        assert isinstance(raw, str), raw[:200]
        event = orjson.loads(raw)
        assert isinstance(event, dict) and isinstance(event.get("type"), str), raw[:300]
        if event["type"] == p.ERROR:
            assert_specific_error(event.get("error"), (self.last_frame[:300], raw[:500]))
            code = event["error"]["code"]
            self.codes[code] = self.codes.get(code, 0) + 1
        return event

    async def until(self, kind: str, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while True:
                event = await self.next()
                if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event

    async def alive(self) -> list[dict[str, Any]]:
        """Round trip through the relay and the model; returns every event received meanwhile.

        The marker is a `response.cancel` for a response that does not exist: the model refuses
        it with an error naming our event_id, so the reply cannot be confused with one caused by
        a fuzzed frame (a fuzzed `input_audio_buffer.clear` would be, with clear/cleared).
        """
        self._markers += 1
        marker = f"{self._marker}-{self._markers}"
        await self.ws.send(json_text({**_CANCEL, "event_id": marker, "response_id": marker}))
        seen = []
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    event = await self.next()
                    error = event.get("error") if event["type"] == p.ERROR else None
                    if isinstance(error, dict) and error.get("event_id") == marker:
                        assert error["code"] == "response_cancel_not_active", event
                        return seen
                    seen.append(event)
        except TimeoutError:
            frame = self.last_frame[:300]
            raise AssertionError(f"session hung: no answer in {TIMEOUT}s after {frame!r}") from None

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, str) and len(frame) > self.limit:
            if self.oversized >= 2:  # a third closes the socket (1009): the test does that last
                frame = frame[: self.limit]
            else:
                self.oversized += 1
        self.last_frame = frame
        self.frames += 1
        expected = expected_refusal(frame, self.limit)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._last_send + self.interval - loop.time())
        self._last_send = loop.time()
        await self.ws.send(frame)
        seen = await self.alive()
        if expected is not None:
            errors = [e["error"] for e in seen if e["type"] == p.ERROR]
            assert expected in {e["code"] for e in errors}, (frame[:300], errors)
            client_id = _event_id(frame)
            if client_id is not None and expected in ("invalid_event", "event_not_allowed"):
                refusal = next(e for e in errors if e["code"] == expected)
                assert refusal["event_id"] == client_id


# Frames that once got a non-specific error: the offline model cannot apply a wrong-typed
# turn_detection value, answers `server_error`, and fails every later session.update.
FRAME_REGRESSIONS = (
    *(
        json_text({"type": p.SESSION_UPDATE, "session": _turn_detection_only(setting)})
        for setting in (
            {"type": "server_vad", "threshold": "abc"},
            {"type": "server_vad", "silence_duration_ms": [1]},
            {"type": "server_vad", "prefix_padding_ms": {"ms": 300}},
            {"type": "semantic_vad", "create_response": "no"},
        )
    ),
    json_text({"type": p.SESSION_UPDATE, "session": {"audio": {"output": {"voice": "cedar"}}}}),
)

FUZZ_BOOKING = "Book a table for 2 tomorrow at 7pm, my name is Fuzz Tester, my phone is 8123 4567"


def _oversized(limit: int) -> str:
    audio = "A" * (limit + 10)
    return orjson.dumps({"type": p.INPUT_AUDIO_APPEND, "audio": audio}).decode()


async def test_client_frames_never_crash_the_session(live_server, pool):
    limit = live_server.settings.max_client_frame_bytes
    async with websockets.connect(
        f"{live_server.ws_url}/v1/realtime?model=gpt-realtime", max_size=None, max_queue=None
    ) as ws:
        rate = getattr(live_server.settings, "max_client_events_per_s", None)
        probe = Probe(ws, limit, rate)
        await probe.until(p.SESSION_UPDATED)
        await probe.send(_oversized(limit))  # the first of at most two before the end
        await drive(probe.send, frames, max_examples=120, examples=FRAME_REGRESSIONS)

        # Whatever the fuzzing left running, the session still books a table.
        await ws.send(json_text(_CANCEL))
        await probe.alive()
        probe.last_frame = FUZZ_BOOKING
        await ws.send(json_text(_user_text(FUZZ_BOOKING)))
        await ws.send(json_text({"type": p.RESPONSE_CREATE}))
        confirmed = await probe.until(p.RESERVATION_CONFIRMED)
        reservation = confirmed["reservation"]
        assert reservation["phone_number"] == "+6581234567"
        assert reservation["party_size"] == 2 and reservation["name"] == "Fuzz Tester"
        assert reservation["reservation_time"] == "19:00"
        await probe.until("response.done")

        # The one documented way a client is closed: a third oversized frame, 1009.
        while probe.oversized < 2:
            await probe.send(_oversized(limit))
        await ws.send(_oversized(limit))
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    row = await pool.fetchrow("SELECT * FROM reservations WHERE phone_number = '+6581234567'")
    assert row["name"] == "Fuzz Tester" and row["party_size"] == 2


async def test_invalid_utf8_in_a_text_frame_closes_only_that_socket(live_server):
    """Not JSON's problem but the WebSocket's: RFC 6455 closes with 1007, the server lives on."""
    url = f"{live_server.ws_url}/v1/realtime?model=gpt-realtime"
    async with websockets.connect(url, max_size=None, max_queue=None) as ws:
        async with asyncio.timeout(TIMEOUT):
            while orjson.loads(await ws.recv())["type"] != p.SESSION_UPDATED:
                pass
            await ws.send(b'{"type": "session.update\xff"}', text=True)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    async with websockets.connect(url, max_size=None, max_queue=None) as ws:
        async with asyncio.timeout(TIMEOUT):
            while orjson.loads(await ws.recv())["type"] != p.SESSION_UPDATED:
                pass


# --- tool arguments from the model ------------------------------------------------------------

REGISTRY = default_registry()
TOOL_ARGUMENTS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "check_availability": {
        "date": dates,
        "time": times,
        "party_size": st.integers(-2, 25),
    },
    "make_reservation": {
        "name": good_names,
        "phone_number": st.sampled_from(VALID_PHONES),
        "date": dates,
        "time": times,
        "party_size": st.integers(-2, 25),
        "notes": texts,
    },
    "lookup_reservation": {
        "phone_number": st.sampled_from(VALID_PHONES),
        "name": good_names,
    },
}


def tool_arguments(name: str) -> st.SearchStrategy[str]:
    """Argument text as a model might send it for tool `name`: right, wrong, or not JSON."""
    fields = TOOL_ARGUMENTS.get(name, TOOL_ARGUMENTS["make_reservation"])
    mixed = {key: good_or_wrong(values) for key, values in fields.items()}
    return weighted(
        (3, st.builds(dumps, st.fixed_dictionaries(fields), styles)),  # well-formed
        (3, st.builds(dumps, st.fixed_dictionaries({}, optional=mixed), styles)),
        (
            1,
            st.builds(
                lambda known, extra: dumps({**extra, **known}),
                st.fixed_dictionaries({}, optional=mixed),
                st.dictionaries(texts, json_values, min_size=1, max_size=2),
            ),
        ),
        (
            1,
            st.builds(
                lambda args, key, value: dumps({**args, key: value}),
                st.fixed_dictionaries(fields),
                st.sampled_from(sorted(fields)),
                huge_text(1_000, 100_000) | st.sampled_from(SQL + UNICODE),
            ),
        ),
        (1, st.builds(dumps, json_values, styles)),  # random JSON, mostly not an object
        (1, texts),  # mostly not JSON
        (
            1,
            st.builds(
                lambda a, cut: dumps(a)[:cut], st.fixed_dictionaries(fields), st.integers(0, 80)
            ),
        ),
        (
            1,
            st.sampled_from(["", "   ", "null", "[]", "{", "{}}", '{"date": NaN}', '{"a": 1e400}'])
            | st.sampled_from(ESCAPED_SURROGATES),
        ),
    )


tool_calls = st.sampled_from([*TOOL_ARGUMENTS, "drop_table", ""]).flatmap(
    lambda name: st.tuples(st.just(name), tool_arguments(name))
)


@settings(FUZZ, max_examples=400)
@given(call=tool_calls)
@example(
    call=(
        "make_reservation",
        json.dumps(
            {
                "name": "Nul\x00Name",
                "phone_number": "8123 4567",
                "date": days_ahead(3),
                "time": "19:00",
                "party_size": 2,
            }
        ),
    )
)
@example(
    call=(
        "make_reservation",
        json.dumps(
            {
                "name": "Ada",
                "phone_number": "8123 4567",
                "date": days_ahead(3),
                "time": "19:00",
                "party_size": 2,
                "notes": "nul\x00notes",
            }
        ),
    )
)
async def test_tool_arguments_always_answer_a_function_call_output(pool, settings, confirmed, call):
    name, arguments = call
    result = await REGISTRY.run(name, arguments, ToolContext(pool=pool, settings=settings), 5.0)
    output = result.output
    context = (name, arguments[:300], output)
    assert isinstance(output, dict), context
    assert orjson.loads(result.output_json()) == output, context
    assert isinstance(output.get("ok"), bool), context
    if output["ok"]:
        assert name in TOOL_ARGUMENTS, context
        if name == "make_reservation":
            assert output["status"] in ("confirmed", "already_booked"), context
            assert_reservation(output["reservation"])
            if output["status"] == "confirmed":
                confirmed.add(output["confirmation_number"])
        elif name == "lookup_reservation":
            assert isinstance(output["found"], bool), context
            if output["found"]:
                assert_reservation(output["reservation"])
        else:
            assert output["available"] is True, context
    else:
        assert_specific_error(
            {"code": output.get("error"), "message": output.get("message")}, context
        )
        assert output["error"] != "internal_error", context
        fields = output.get("fields", {})
        assert isinstance(fields, dict), context
        assert all(isinstance(v, str) and v for v in fields.values()), context
    page_event = result.page_event
    assert page_event is None or (
        isinstance(page_event, dict) and isinstance(page_event.get("type"), str)
    ), context
    if page_event is not None:
        orjson.dumps(page_event)
    if not output["ok"]:
        assert page_event is not None and page_event["type"] == p.RESERVATION_FAILED, context
    await assert_table_intact(pool, confirmed)
