"""REST over a real HTTP connection to uvicorn on loopback, backed by the real database."""

import datetime as dt

import httpx
import pytest

from server.book.database import open_database
from tests.conftest import serve_app
from tests.netproxy import CuttableProxy


@pytest.fixture
async def client(live_server, pool):
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        yield http


def booking(settings, **overrides):
    body = {
        "name": "Ada Lovelace",
        "phone_number": "9820 7272",
        "reservation_date": (settings.today() + dt.timedelta(days=3)).isoformat(),
        "reservation_time": "19:30",
        "party_size": 4,
        "other_info": {"notes": "window seat"},
    }
    body.update(overrides)
    return body


async def test_create_returns_201_with_confirmation(client, settings, pool):
    response = await client.post("/api/reservations", json=booking(settings))
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["phone_number"] == "+6598207272"
    assert data["reservation_time"] == "19:30"
    assert data["other_info"] == {"notes": "window seat"}
    stored = await pool.fetchval(
        "SELECT confirmation_number FROM reservations WHERE phone_number = '+6598207272'"
    )
    assert data["confirmation_number"] == stored


async def test_identical_repeat_is_200_with_same_confirmation(client, settings):
    first = await client.post("/api/reservations", json=booking(settings))
    again = await client.post(
        "/api/reservations", json=booking(settings, phone_number="+65 9820-7272")
    )
    assert again.status_code == 200
    assert again.json()["confirmation_number"] == first.json()["confirmation_number"]


async def test_conflict_is_409_naming_existing_date_and_time(client, settings):
    first = (await client.post("/api/reservations", json=booking(settings))).json()
    response = await client.post(
        "/api/reservations", json=booking(settings, reservation_time="20:00")
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "reservation_exists"
    assert error["existing"] == {
        "reservation_date": first["reservation_date"],
        "reservation_time": "19:30",
    }
    assert first["reservation_date"] in error["message"] and "19:30" in error["message"]


async def test_invalid_fields_are_422_per_field(client, settings):
    response = await client.post(
        "/api/reservations",
        json=booking(settings, phone_number="12", party_size=0, reservation_date="2020-01-01"),
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert set(error["fields"]) == {"phone_number", "party_size", "reservation_date"}
    assert "not a valid phone number" in error["fields"]["phone_number"]


@pytest.mark.parametrize("content", [b"{", b"", b"\xff\xfe", b"nope"])
async def test_body_that_is_not_json_is_400(client, content):
    response = await client.post(
        "/api/reservations", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("content", [b"[]", b"42", b'"x"', b"null"])
async def test_json_that_is_not_an_object_is_422(client, content):
    response = await client.post("/api/reservations", content=content)
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"body": "must be a JSON object"}


async def test_body_over_16kb_is_413(client, settings):
    big = booking(settings, other_info={"notes": "x" * 17_000})
    response = await client.post("/api/reservations", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_chunked_body_over_16kb_is_413(client):
    async def chunks():
        for _ in range(20):
            yield b" " * 1024

    response = await client.post("/api/reservations", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["%2B6598207272", "+6598207272", "6598207272", "9820%207272"])
async def test_get_normalises_the_path_number(client, settings, path):
    created = (await client.post("/api/reservations", json=booking(settings))).json()
    response = await client.get(f"/api/reservations/{path}")
    assert response.status_code == 200
    assert response.json() == created


async def test_get_unknown_is_404_and_invalid_is_422(client):
    missing = await client.get("/api/reservations/+6581234567")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "reservation_not_found"
    invalid = await client.get("/api/reservations/123")
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid_phone_number"


async def test_unknown_route_and_method_are_json_errors(client):
    assert (await client.get("/api/nothing")).json()["error"]["code"] == "not_found"
    response = await client.delete("/api/reservations")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_openapi_describes_both_endpoints(client):
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/reservations",
        "/api/reservations/{phone_number}",
        "/api/reservations/{phone_number}/history",
        "/api/reservations/events",
        "/api/calls",
        "/api/calls/{call_id}",
        "/api/messages",
        "/api/restaurant",
        "/api/restaurant/conflicts",
        "/api/availability",
        "/api/availability/check",
    }
    assert set(document["paths"]["/api/reservations/{phone_number}"]) == {"get", "patch", "delete"}
    assert set(document["paths"]["/api/restaurant"]) == {"get", "put"}
    post = document["paths"]["/api/reservations"]["post"]
    assert {"201", "200", "400", "403", "409", "413", "422", "503"} <= set(post["responses"])
    request_schema = document["components"]["schemas"]["ReservationRequest"]
    assert set(request_schema["required"]) >= {"name", "phone_number", "party_size"}
    assert request_schema["properties"]["override"]["type"] == "boolean"
    slot = document["components"]["schemas"]["SlotUnavailable"]
    assert slot["properties"]["error"]["properties"]["code"] == {"const": "slot_unavailable"}
    patch = document["paths"]["/api/reservations/{phone_number}"]["patch"]
    assert "409" in patch["responses"]
    for path, method in [
        ("/api/restaurant", "put"),
        ("/api/restaurant/conflicts", "get"),
        ("/api/reservations/{phone_number}", "patch"),
    ]:
        assert document["paths"][path][method]["security"] == [{"staffToken": []}], path


async def test_database_outage_is_503_and_recovers(settings, database):
    """Cut the link to PostgreSQL under a live server, then restore it."""
    proxy = await CuttableProxy.for_dsn(settings.database_url).start()
    try:
        outage_settings = settings.model_copy(
            update={"database_url": proxy.dsn(), "db_command_timeout_s": 2.0}
        )
        async with (
            serve_app(outage_settings) as live,
            httpx.AsyncClient(base_url=live.url, timeout=10) as http,
        ):
            assert (await http.get("/healthz")).status_code == 200
            proxy.cut()
            for method, path, body in [
                ("GET", "/api/reservations/+6581230000", None),
                ("POST", "/api/reservations", booking(settings, phone_number="+6581230000")),
                ("GET", "/healthz", None),
            ]:
                response = await http.request(method, path, json=body)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["error"]["code"] == "database_unavailable"
            proxy.restore()
            response = await http.post(
                "/api/reservations", json=booking(settings, phone_number="+6581230000")
            )
            assert response.status_code == 201
            assert (await http.get("/api/reservations/+6581230000")).status_code == 200
    finally:
        await proxy.close()
        await database.pool.execute("DELETE FROM reservations WHERE phone_number = '+6581230000'")


async def test_startup_with_database_down_fails_with_one_clear_message(settings):
    proxy = await CuttableProxy.for_dsn(settings.database_url).start()
    proxy.cut()
    try:
        down = settings.model_copy(update={"database_url": proxy.dsn(), "db_startup_wait_s": 0.3})
        with pytest.raises(Exception, match="cannot reach PostgreSQL at postgresql://"):
            await open_database(down)
    finally:
        await proxy.close()
