"""Every SQL statement of the call records: write, sweep, list, read, and the day's cost.

All writes are idempotent (an upsert by the call's id, UPDATEs with conditions), so a retried
flush, two processes sweeping at once or a process writing back a row another one marked
`interrupted` all end in the right state. Every statement carries a timeout.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from server.book.reservations import DatabaseUnavailable

# What asyncpg raises when the server is gone, restarting or too slow (reads answer 503).
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
)

UPSERT_SQL = """
INSERT INTO calls AS c
    (id, sid, channel, caller, status, started_at, ended_at, last_seen, end_reason, outcome,
     confirmation_number, reply_count, reply_latency_p50_ms, reply_latency_max_ms,
     first_audio_ms, tool_calls, usage, cost_usd, transcript)
VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status,
    ended_at = EXCLUDED.ended_at,
    last_seen = now(),
    end_reason = EXCLUDED.end_reason,
    outcome = EXCLUDED.outcome,
    confirmation_number = EXCLUDED.confirmation_number,
    reply_count = EXCLUDED.reply_count,
    reply_latency_p50_ms = EXCLUDED.reply_latency_p50_ms,
    reply_latency_max_ms = EXCLUDED.reply_latency_max_ms,
    first_audio_ms = EXCLUDED.first_audio_ms,
    tool_calls = EXCLUDED.tool_calls,
    usage = EXCLUDED.usage,
    cost_usd = EXCLUDED.cost_usd,
    -- a transcript the retention sweep removed stays removed
    transcript = CASE WHEN c.transcript_purged_at IS NULL THEN EXCLUDED.transcript END
"""

TOUCH_SQL = "UPDATE calls SET last_seen = now() WHERE id = ANY($1::uuid[]) AND status = 'live'"

# A row still live whose process has not written it for `stale_s` seconds: that process died.
# It ended, at the latest, when it was last seen.
MARK_INTERRUPTED_SQL = """
UPDATE calls
   SET status = 'interrupted', ended_at = last_seen,
       end_reason = coalesce(end_reason, 'interrupted')
 WHERE status = 'live' AND last_seen < now() - $1 * interval '1 second'
"""

PURGE_SQL = """
UPDATE calls SET transcript = NULL, transcript_purged_at = now()
 WHERE transcript IS NOT NULL AND started_at < now() - $1 * interval '1 day'
"""

COST_SQL = """
SELECT coalesce(sum(cost_usd), 0) FROM calls WHERE started_at >= $1 AND started_at < $2
"""

SUMMARY_COLUMNS = (
    "id, sid, channel, caller, status, started_at, ended_at, last_seen, end_reason, outcome,"
    " confirmation_number, reply_count, reply_latency_p50_ms, reply_latency_max_ms,"
    " first_audio_ms, usage, cost_usd"
)
LIST_SQL = f"""
SELECT {SUMMARY_COLUMNS} FROM calls
 WHERE started_at >= $1 AND started_at < $2
   AND ($3::timestamptz IS NULL OR (started_at, id) < ($3, $4::uuid))
 ORDER BY started_at DESC, id DESC
 LIMIT $5
"""
GET_SQL = f"""
SELECT {SUMMARY_COLUMNS}, tool_calls, transcript, transcript_purged_at FROM calls WHERE id = $1
"""


def _time(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)


def _args(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        uuid.UUID(row["id"]),
        row["sid"],
        row["channel"],
        row["caller"],
        row["status"],
        _time(row["started_at"]),
        _time(row["ended_at"]),
        row["end_reason"],
        row["outcome"],
        row["confirmation_number"],
        row["reply_count"],
        row["reply_latency_p50_ms"],
        row["reply_latency_max_ms"],
        row["first_audio_ms"],
        row["tool_calls"],
        row["usage"],
        Decimal(str(row["cost_usd"])),
        row["transcript"],
    )


async def write(pool: asyncpg.Pool, rows: list[dict[str, Any]], timeout_s: float) -> None:
    """Insert or update these calls' rows (`CallLog.row()`s), in one transaction."""
    if not rows:
        return
    async with pool.acquire(timeout=timeout_s) as conn, conn.transaction():
        await conn.executemany(UPSERT_SQL, [_args(row) for row in rows], timeout=timeout_s)


async def touch(pool: asyncpg.Pool, ids: list[str], timeout_s: float) -> None:
    """Say these live calls are still running (their rows had nothing new)."""
    if ids:
        await pool.execute(TOUCH_SQL, [uuid.UUID(i) for i in ids], timeout=timeout_s)


async def mark_interrupted(pool: asyncpg.Pool, stale_s: float, timeout_s: float) -> int:
    """Mark `interrupted` the live rows nobody has written for `stale_s` seconds; how many."""
    status = await pool.execute(MARK_INTERRUPTED_SQL, stale_s, timeout=timeout_s)
    return int(status.split()[-1])


async def purge_transcripts(pool: asyncpg.Pool, days: int, timeout_s: float) -> int:
    """Drop the transcripts of calls started more than `days` days ago (0: all); how many."""
    status = await pool.execute(PURGE_SQL, days, timeout=timeout_s)
    return int(status.split()[-1])


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """Midnight to midnight of `day` in the restaurant's timezone (23 or 25 h across DST)."""
    start = dt.datetime.combine(day, dt.time(), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return start, end


async def cost_of_day(pool: asyncpg.Pool, day: dt.date, zone: ZoneInfo, timeout_s: float) -> float:
    """Estimated model cost in USD of the calls started on `day` (restaurant time), every
    process's included: live calls as of their latest flush. One index range scan."""
    start, end = day_bounds(day, zone)
    total = await pool.fetchval(COST_SQL, start, end, timeout=timeout_s)
    return float(total)


# --- reading, for staff -------------------------------------------------------------------------


class InvalidCursor(ValueError):
    """A `cursor` that this server did not hand out."""


def encode_cursor(started_at: dt.datetime, call_id: uuid.UUID) -> str:
    """Opaque to clients: where the next page starts, as (started_at, id) of the last row."""
    key = [started_at.isoformat(), str(call_id)]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, call_id = orjson.loads(raw)
        at = dt.datetime.fromisoformat(started)
        key = uuid.UUID(call_id)
    except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
        raise InvalidCursor("cursor is not one this server handed out") from None
    if at.tzinfo is None:
        raise InvalidCursor("cursor is not one this server handed out")
    return at, key


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class CallRecord:
    """A calls row as staff see it."""

    row: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        r = self.row
        started, ended = r["started_at"], r["ended_at"]
        body: dict[str, Any] = {
            "id": str(r["id"]),
            "sid": r["sid"],
            "channel": r["channel"],
            "caller": r["caller"],
            "status": r["status"],
            "started_at": _iso(started),
            "ended_at": _iso(ended),
            "last_seen": _iso(r["last_seen"]),
            "duration_s": round((ended - started).total_seconds(), 1) if ended else None,
            "end_reason": r["end_reason"],
            "outcome": r["outcome"],
            "confirmation_number": r["confirmation_number"],
            "reply_latency_ms": {
                "count": r["reply_count"],
                "p50": r["reply_latency_p50_ms"],
                "max": r["reply_latency_max_ms"],
            },
            "first_audio_ms": r["first_audio_ms"],
            "usage": r["usage"],
            "cost_usd": float(r["cost_usd"]),
        }
        if "transcript" in r:
            body["tool_calls"] = r["tool_calls"]
            body["transcript"] = r["transcript"]
            body["transcript_purged_at"] = _iso(r["transcript_purged_at"])
        return body


async def list_calls(
    pool: asyncpg.Pool,
    *,
    day: dt.date,
    zone: ZoneInfo,
    limit: int,
    cursor: str | None,
    timeout_s: float,
) -> tuple[list[CallRecord], str | None]:
    """One page of `day`'s calls, newest first, and the cursor of the next page (None: last)."""
    start, end = day_bounds(day, zone)
    after_at, after_id = decode_cursor(cursor) if cursor else (None, None)
    try:
        rows = await pool.fetch(
            LIST_SQL, start, end, after_at, after_id, limit + 1, timeout=timeout_s
        )
    except UNAVAILABLE as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
    items = [CallRecord(dict(row)) for row in rows[:limit]]
    more = len(rows) > limit
    last = items[-1].row if more else None
    return items, encode_cursor(last["started_at"], last["id"]) if last else None


async def get_call(pool: asyncpg.Pool, call_id: uuid.UUID, timeout_s: float) -> CallRecord | None:
    try:
        row = await pool.fetchrow(GET_SQL, call_id, timeout=timeout_s)
    except UNAVAILABLE as exc:
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
    return CallRecord(dict(row)) if row is not None else None
