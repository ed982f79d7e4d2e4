"""The one way a client's mistake leaves the state machine: an ``error`` event, session intact."""

from __future__ import annotations

__all__ = ["ClientError", "missing"]


class ClientError(Exception):
    """A client mistake, reported as an ``error`` event; the session carries on."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def missing(param: str) -> ClientError:
    return ClientError(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    )
