"""The guest-message outbox: every SQL statement of it, and the rows a booking change writes.

A booking change writes its texts in its own transaction, through the history writer
(`reservations._record` runs `write_sql.RECORD_SQL`, whose CTEs from here add the outbox rows):
one text for the change and, for a confirmed booking, one reminder per `REMINDERS_BEFORE` offset,
replacing the booking's pending reminders (a changed booking's reminders move with it, a
cancelled one's are dropped). A rollback therefore sends nothing, and a commit cannot lose a text.

What the writer needs from the settings (messages on or off, the reminder offsets, the
restaurant's time zone) reaches that statement as custom settings of the pool's connections
(`connection_settings`), so no write function takes another argument and every process uses its
own configuration.

The senders (`server.messaging.sender`) claim due rows with `FOR UPDATE SKIP LOCKED` and a lease:
`next_attempt_at` moves to the lease's end while a row is `sending`, so a process that dies
mid-send leaves its row to another sender once the lease has run out.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from server.book.db_errors import outage_as_unavailable
from server.settings import Settings

# Custom settings on every pool connection, read by the outbox part of RECORD_SQL.
GUC_ENABLED = "luma.messages"
GUC_REMINDERS = "luma.reminders_before_s"
GUC_TIMEZONE = "luma.timezone"

KINDS = ("confirmation", "change", "cancellation", "request", "reminder")
FINAL = ("sent", "delivered", "failed", "skipped_opted_out", "skipped_not_configured", "dropped")


def connection_settings(settings: Settings) -> dict[str, str]:
    """The `server_settings` of the pool: what the history writer's outbox part reads."""
    return {
        GUC_ENABLED: "on" if settings.messages else "off",
        GUC_REMINDERS: ",".join(str(int(o.total_seconds())) for o in settings.reminder_offsets),
        GUC_TIMEZONE: settings.restaurant_timezone,
    }


def kind_of(action: str, after_status: str) -> str:
    """Which text a history action sends: a request (large party) is acknowledged, and the
    staff's answer to it is a confirmation (`confirmed`) or a cancellation (`declined`)."""
    if action in ("cancelled", "declined"):
        return "cancellation"
    if action == "changed":
        return "change"
    if after_status == "requested":
        return "request"
    return "confirmation"  # created, replaced, confirmed


def outbox_ctes(entry: str) -> str:
    """The outbox part of the history writer's statement, after its CTE `entry` (which returns
    the new history row's `seq`). Parameters, shared with the history insert: $1 reservation
    id, $2 phone, $3 action, $4 source, $6 booking before, $7 booking after, $9 the text's
    kind."""
    enabled = f"current_setting('{GUC_ENABLED}', true) = 'on'"
    return f"""
, message AS (
    INSERT INTO messages
        (reservation_id, phone_number, kind, event, source, history_seq, booking, previous)
    SELECT $1, $2, $9, $3, $4, {entry}.seq, $7, $6 FROM {entry} WHERE {enabled}
    RETURNING id
), dropped AS (
    UPDATE messages SET status = 'dropped', error = 'the booking changed', updated_at = now()
    WHERE reservation_id = $1 AND kind = 'reminder' AND status = 'pending'
    RETURNING id
), starts AS (
    SELECT (($7::jsonb ->> 'reservation_date')::date + ($7::jsonb ->> 'reservation_time')::time)
           AT TIME ZONE current_setting('{GUC_TIMEZONE}') AS at
    WHERE {enabled} AND $7::jsonb ->> 'status' = 'confirmed'
), offsets AS (
    SELECT make_interval(secs => s::int) AS before
    FROM unnest(string_to_array(nullif(current_setting('{GUC_REMINDERS}', true), ''), ',')) AS s
), reminders AS (
    INSERT INTO messages
        (reservation_id, phone_number, kind, event, booking, remind_before, due_at,
         next_attempt_at)
    SELECT $1, $2, 'reminder', 'reminder', $7, offsets.before, starts.at - offsets.before,
           starts.at - offsets.before
    FROM starts, offsets WHERE starts.at - offsets.before > now()
    RETURNING id
)"""


# --- the senders -----------------------------------------------------------------------------

MESSAGE_COLUMNS = (
    "id, reservation_id, phone_number, kind, event, source, booking, previous, remind_before,"
    " due_at,"
    " status, attempts, body, twilio_sid, error, created_at, sent_at, updated_at"
)

CLAIM_SQL = f"""
WITH due AS (
    SELECT id FROM messages
    WHERE status IN ('pending', 'sending') AND next_attempt_at <= $1 AND attempts < $3
    ORDER BY next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE messages m SET
    status = 'sending', attempts = m.attempts + 1, next_attempt_at = $1 + $4::interval,
    updated_at = now()
FROM due WHERE m.id = due.id
RETURNING {", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))},
    EXISTS (SELECT 1 FROM sms_opt_outs o WHERE o.phone_number = m.phone_number) AS opted_out
"""

# A row whose last attempt's sender vanished (lease over, no attempts left) has failed.
EXPIRE_SQL = """
UPDATE messages SET status = 'failed', updated_at = now(),
    error = left(coalesce(error || '; ', '') || 'no answer before the lease ran out', 1000)
WHERE status = 'sending' AND next_attempt_at <= $1 AND attempts >= $2
"""

# Each finish names the attempt it ends: a sender whose lease ran out (another took the row)
# changes nothing.
SENT_SQL = """
UPDATE messages SET status = 'sent', twilio_sid = $3, body = $4, error = NULL, sent_at = now(),
    updated_at = now()
WHERE id = $1 AND attempts = $2 AND status = 'sending'
"""
RETRY_SQL = """
UPDATE messages SET status = 'pending', next_attempt_at = $3, body = $4, error = left($5, 1000),
    updated_at = now()
WHERE id = $1 AND attempts = $2 AND status = 'sending'
"""
FINISH_SQL = """
UPDATE messages SET status = $3, body = $4, error = left($5, 1000), updated_at = now()
WHERE id = $1 AND attempts = $2 AND status = 'sending'
"""

# Delivery reports may arrive out of order: `delivered` and `failed` are never undone by a late
# `sent`.
STATUS_SQL = """
UPDATE messages SET
    status = CASE WHEN $2 = 'sent' AND status IN ('delivered', 'failed') THEN status ELSE $2 END,
    error = CASE WHEN $2 = 'failed' THEN left($3, 1000) ELSE error END,
    updated_at = now()
WHERE twilio_sid = $1
RETURNING id
"""

OPT_OUT_SQL = "INSERT INTO sms_opt_outs (phone_number) VALUES ($1) ON CONFLICT DO NOTHING"
OPT_IN_SQL = "DELETE FROM sms_opt_outs WHERE phone_number = $1"
REPLY_SQL = """
INSERT INTO sms_replies (message_sid, phone_number, body) VALUES ($1, $2, left($3, 2000))
ON CONFLICT (message_sid) DO NOTHING
"""

SECRET_SQL = """
WITH made AS (
    INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
    RETURNING value
)
SELECT value FROM made UNION ALL SELECT value FROM server_secrets WHERE name = $1 LIMIT 1
"""

SECRET_READ_SQL = "SELECT value FROM server_secrets WHERE name = $1"

LIST_SQL = f"""
SELECT {MESSAGE_COLUMNS} FROM messages
WHERE ($1::text IS NULL OR phone_number = $1)
  AND ($2::text IS NULL OR booking ->> 'reservation_date' = $2)
ORDER BY id DESC LIMIT $3
"""
REPLIES_SQL = """
SELECT body, received_at FROM sms_replies WHERE phone_number = $1 ORDER BY id DESC LIMIT $2
"""


@dataclass(frozen=True)
class Message:
    """One outbox row, as a sender claimed it or the staff read it."""

    id: int
    reservation_id: int
    phone_number: str
    kind: str
    event: str
    source: str | None
    booking: dict[str, Any]
    previous: dict[str, Any] | None
    remind_before: dt.timedelta | None
    due_at: dt.datetime
    status: str
    attempts: int
    body: str | None
    twilio_sid: str | None
    error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    updated_at: dt.datetime
    opted_out: bool = False

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Message:
        return cls(**dict(row))

    def to_json(self) -> dict[str, Any]:
        """What the staff see (never the booking snapshots: the booking itself is beside it)."""
        before = self.remind_before
        return {
            "id": self.id,
            "kind": self.kind,
            "event": self.event,
            "phone_number": self.phone_number,
            "confirmation_number": self.booking.get("confirmation_number"),
            "reservation_date": self.booking.get("reservation_date"),
            "remind_before_s": int(before.total_seconds()) if before is not None else None,
            "status": self.status,
            "attempts": self.attempts,
            "body": self.body,
            "error": self.error,
            "twilio_sid": self.twilio_sid,
            "due_at": self.due_at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "updated_at": self.updated_at.isoformat(),
        }


async def claim(
    pool: asyncpg.Pool, now: dt.datetime, limit: int, max_attempts: int, lease: dt.timedelta
) -> list[Message]:
    """Due rows for this sender, each leased to it until `now + lease`; fails the rows whose
    last attempt's sender vanished."""
    with outage_as_unavailable():
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(EXPIRE_SQL, now, max_attempts)
            rows = await conn.fetch(CLAIM_SQL, now, limit, max_attempts, lease)
    return [Message.from_row(row) for row in rows]


async def mark_sent(pool: asyncpg.Pool, message: Message, sid: str, body: str) -> bool:
    with outage_as_unavailable():
        result = await pool.execute(SENT_SQL, message.id, message.attempts, sid, body)
    return bool(result.endswith(" 1"))


async def mark_retry(
    pool: asyncpg.Pool, message: Message, at: dt.datetime, body: str, error: str
) -> None:
    with outage_as_unavailable():
        await pool.execute(RETRY_SQL, message.id, message.attempts, at, body, error)


async def finish(
    pool: asyncpg.Pool, message: Message, status: str, body: str | None, error: str | None
) -> None:
    """End the row's life without a send: `failed`, `skipped_*` or `dropped`."""
    if status not in FINAL:
        raise ValueError(f"not a final status: {status}")
    with outage_as_unavailable():
        await pool.execute(FINISH_SQL, message.id, message.attempts, status, body, error)


async def delivery_status(pool: asyncpg.Pool, sid: str, status: str, error: str | None) -> bool:
    """Record Twilio's delivery report; False when no text has that SID."""
    with outage_as_unavailable():
        return await pool.fetchval(STATUS_SQL, sid, status, error) is not None


async def opt_out(pool: asyncpg.Pool, phone_number: str) -> None:
    with outage_as_unavailable():
        await pool.execute(OPT_OUT_SQL, phone_number)


async def opt_in(pool: asyncpg.Pool, phone_number: str) -> None:
    with outage_as_unavailable():
        await pool.execute(OPT_IN_SQL, phone_number)


async def store_reply(pool: asyncpg.Pool, sid: str, phone_number: str, body: str) -> None:
    with outage_as_unavailable():
        await pool.execute(REPLY_SQL, sid, phone_number, body)


async def shared_secret(pool: asyncpg.Pool, name: str) -> bytes:
    """A random key shared by every process on this database, made by the first to ask."""
    with outage_as_unavailable():
        value = await pool.fetchval(SECRET_SQL, name, secrets.token_bytes(32))
        if value is None:  # another process made it while this statement ran: read theirs
            value = await pool.fetchval(SECRET_READ_SQL, name)
    return bytes(value)


async def list_messages(
    pool: asyncpg.Pool, phone_number: str | None, day: dt.date | None, limit: int
) -> list[Message]:
    """The staff's view: texts to a phone and/or about bookings on a day, newest first."""
    with outage_as_unavailable():
        rows = await pool.fetch(LIST_SQL, phone_number, day.isoformat() if day else None, limit)
    return [Message.from_row(row) for row in rows]


async def list_replies(pool: asyncpg.Pool, phone_number: str, limit: int) -> list[dict[str, Any]]:
    """What a guest texted back (other than STOP/START/HELP), newest first."""
    with outage_as_unavailable():
        rows = await pool.fetch(REPLIES_SQL, phone_number, limit)
    return [{"body": row["body"], "received_at": row["received_at"].isoformat()} for row in rows]
