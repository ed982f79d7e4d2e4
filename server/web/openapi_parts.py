"""What the OpenAPI modules share: a JSON response, the staff rule's security and its errors."""

from __future__ import annotations

from typing import Any

STAFF: list[dict[str, list[str]]] = [{"staffToken": []}]
STAFF_NOTE = (
    " Staff only: Authorization: Bearer <STAFF_TOKEN> when STAFF_TOKEN is set, else loopback."
)


def json_content(schema: dict[str, Any] | str, description: str) -> dict[str, Any]:
    """A JSON response (or body) of `schema`: a schema, or the name of a component."""
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def staff_errors() -> dict[str, Any]:
    """The answers of every staff route besides its own: the staff rule's and an outage."""
    return {
        "401": json_content("Error", "STAFF_TOKEN is set and was not sent"),
        "403": json_content("Error", "STAFF_TOKEN is unset and the client is not on this machine"),
        "503": json_content("Error", "database unavailable"),
    }
