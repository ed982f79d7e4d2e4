"""The model's tools on a real database: every outcome is JSON the model can speak from."""

import datetime as dt

import orjson
import pytest

from server.book.database import create_pool
from tests.netproxy import CuttableProxy
from tools import CALL_CONTROL, ToolContext, default_registry
from tools.booking import names_match, spell

REGISTRY = default_registry()


@pytest.fixture
def ctx(pool, settings):
    return ToolContext(pool=pool, settings=settings)


def tomorrow(settings) -> str:
    return (settings.today() + dt.timedelta(days=1)).isoformat()


def booking_args(settings, **overrides):
    args = {
        "name": "Ada Lovelace",
        "phone_number": "9820 7272",
        "date": tomorrow(settings),
        "time": "19:00",
        "party_size": 4,
        "notes": "window seat",
    }
    args.update(overrides)
    return args


async def run(ctx, name, args, deadline_s=5.0):
    arguments = args if isinstance(args, str) else orjson.dumps(args).decode()
    return await REGISTRY.run(name, arguments, ctx, deadline_s)


def test_schemas_are_function_tools_with_required_fields():
    schemas = {s["name"]: s for s in REGISTRY.schemas()}
    booking = {
        "check_availability",
        "make_reservation",
        "lookup_reservation",
        "change_reservation",
        "cancel_reservation",
    }
    assert set(schemas) == booking | {"end_call", "transfer_call"}
    page = {s["name"] for s in REGISTRY.schemas(without=CALL_CONTROL)}
    assert page == booking  # a page cannot be hung up or transferred by the host
    for schema in schemas.values():
        assert schema["type"] == "function"
        assert schema["parameters"]["type"] == "object"
        assert schema["parameters"]["additionalProperties"] is False
    assert schemas["make_reservation"]["parameters"]["required"] == [
        "name",
        "phone_number",
        "date",
        "time",
        "party_size",
    ]


async def test_make_reservation_writes_through_the_shared_rules(ctx, pool, settings):
    result = await run(ctx, "make_reservation", booking_args(settings))
    out = result.output
    assert out["ok"] is True and out["status"] == "confirmed"
    row = await pool.fetchrow("SELECT * FROM reservations")
    assert row["phone_number"] == "+6598207272"
    assert row["other_info"] == {"notes": "window seat"}
    assert out["confirmation_number"] == row["confirmation_number"]
    assert out["confirmation_number_spelled"] == " ".join(row["confirmation_number"])
    event = result.page_event
    assert event["type"] == "reservation.confirmed"
    assert event["confirmation_number"] == row["confirmation_number"]
    assert event["reservation"]["party_size"] == 4
    assert event["repeated"] is False
    assert result.duration_ms > 0
    orjson.loads(result.output_json())  # the output is JSON text


async def test_repeated_call_is_idempotent(ctx, pool, settings):
    first = await run(ctx, "make_reservation", booking_args(settings))
    again = await run(ctx, "make_reservation", booking_args(settings, phone_number="+6598207272"))
    assert again.output["status"] == "already_booked"
    assert again.output["confirmation_number"] == first.output["confirmation_number"]
    assert again.page_event["repeated"] is True
    assert await pool.fetchval("SELECT count(*) FROM reservations") == 1


async def test_conflict_is_a_spoken_refusal(ctx, settings):
    await run(ctx, "make_reservation", booking_args(settings))
    result = await run(ctx, "make_reservation", booking_args(settings, time="20:00"))
    assert result.output["ok"] is False
    assert result.output["error"] == "reservation_exists"
    assert "19:00" in result.output["message"]
    assert result.output["existing"] == {"date": tomorrow(settings), "time": "19:00"}
    assert result.page_event["type"] == "reservation.failed"
    assert result.page_event["reason"] == "reservation_exists"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"phone_number": "12"}, "phone_number"),
        ({"date": "2020-01-01"}, "date"),
        ({"date": "tomorrow"}, "date"),
        ({"time": "7pm"}, "time"),
        ({"party_size": 0}, "party_size"),
        ({"party_size": "four"}, "party_size"),
        ({"name": ""}, "name"),
        ({"notes": 5}, "notes"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_arguments_name_the_field(ctx, pool, settings, arguments, field):
    result = await run(ctx, "make_reservation", booking_args(settings, **arguments))
    assert result.output["ok"] is False
    assert result.output["error"] == "invalid_arguments"
    assert field in result.output["fields"]
    assert field.replace("_", " ") in result.output["message"]
    assert result.page_event["type"] == "reservation.failed"
    assert await pool.fetchval("SELECT count(*) FROM reservations") == 0


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"', "", "null"])
async def test_malformed_arguments_are_answered(ctx, arguments):
    result = await run(ctx, "make_reservation", arguments)
    assert result.output["ok"] is False
    assert result.output["error"] == "invalid_arguments"


async def test_missing_arguments_are_listed(ctx):
    result = await run(ctx, "make_reservation", {"name": "Ada"})
    assert set(result.output["fields"]) == {"phone_number", "date", "time", "party_size"}


async def test_unknown_tool(ctx):
    result = await run(ctx, "cancel_everything", {})
    assert result.output == {
        "ok": False,
        "error": "unknown_tool",
        "message": "There is no tool called 'cancel_everything'.",
    }


async def test_lookup_finds_with_fuzzy_name(ctx, settings):
    made = await run(ctx, "make_reservation", booking_args(settings))
    for said in ["Ada Lovelace", "ada lovelase", "Ada", "LOVELACE"]:
        result = await run(
            ctx, "lookup_reservation", {"phone_number": "+65 9820 7272", "name": said}
        )
        assert result.output["found"] is True, said
        assert result.page_event["type"] == "reservation.found"
        assert result.page_event["confirmation_number"] == made.output["confirmation_number"]


async def test_wrong_name_answers_exactly_like_no_booking(ctx, settings):
    await run(ctx, "make_reservation", booking_args(settings))
    wrong = await run(
        ctx, "lookup_reservation", {"phone_number": "98207272", "name": "Alan Turing"}
    )
    none = await run(
        ctx, "lookup_reservation", {"phone_number": "81234567", "name": "Ada Lovelace"}
    )
    assert wrong.output == none.output
    assert wrong.output["found"] is False
    strip = lambda e: {k: v for k, v in e.items() if k != "event_id"}  # noqa: E731
    assert strip(wrong.page_event) == strip(none.page_event)
    assert wrong.page_event["type"] == "reservation.not_found"


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Ada Lovelace", True),
        ("ada", True),
        ("Adah Love Lace", True),
        ("Lovelace", True),
        ("A", False),
        ("Ad", False),
        ("Alan", False),
        ("Bob Smith", False),
        ("", False),
    ],
)
def test_names_match(said, expected):
    assert names_match(said, "Ada Lovelace") is expected


async def test_lookup_invalid_phone(ctx):
    result = await run(ctx, "lookup_reservation", {"phone_number": "12", "name": "Ada"})
    assert result.output["error"] == "invalid_arguments"


async def test_check_availability_validates_and_says_yes(ctx, settings):
    ok = await run(
        ctx, "check_availability", {"date": tomorrow(settings), "time": "19:00", "party_size": 2}
    )
    assert ok.output["ok"] is True and ok.output["available"] is True
    assert ok.page_event["type"] == "availability.checked"
    bad = await run(
        ctx, "check_availability", {"date": "2020-01-01", "time": "25:00", "party_size": 50}
    )
    assert bad.output["error"] == "invalid_arguments"
    assert set(bad.output["fields"]) == {"date", "time", "party_size"}


def test_spell():
    assert spell("AB3X7K") == "A B 3 X 7 K"


async def test_database_down_is_a_friendly_retry_message(settings):
    proxy = await CuttableProxy.for_dsn(settings.database_url).start()
    pool = await create_pool(proxy.dsn(), settings.model_copy(update={"db_command_timeout_s": 2.0}))
    try:
        proxy.cut()
        ctx = ToolContext(pool=pool, settings=settings)
        result = await run(ctx, "make_reservation", booking_args(settings))
        assert result.output["ok"] is False
        assert result.output["error"] == "database_unavailable"
        assert "try again" in result.output["message"]
        assert result.page_event["type"] == "reservation.failed"
        proxy.restore()
        again = await run(ctx, "make_reservation", booking_args(settings, phone_number="81230001"))
        assert again.output["ok"] is True
        await pool.execute("DELETE FROM reservations WHERE phone_number = '+6581230001'")
    finally:
        await pool.close()
        await proxy.close()


async def test_slow_tool_times_out_with_a_message(settings):
    """A link that accepts but never answers: the tool's own timeout must fire."""
    proxy = await CuttableProxy.for_dsn(settings.database_url).start()
    pool = await create_pool(proxy.dsn(), settings.model_copy(update={"db_command_timeout_s": 30}))
    try:
        proxy.stall()
        ctx = ToolContext(pool=pool, settings=settings)
        result = await run(ctx, "make_reservation", booking_args(settings), deadline_s=0.3)
        assert result.output["error"] == "timeout"
        assert result.page_event["type"] == "reservation.failed"
    finally:
        proxy.cut()  # the stalled connections go away at once
        await pool.close()
        await proxy.close()
