"""The SQL of the book's writes (`reservations` runs it): lock a phone's booking, insert, replace,
change, cancel, confirm, and append the history row."""

from __future__ import annotations

from server.book.outbox import outbox_ctes
from server.book.rows import COLUMNS, HELD

# The channel every history row is announced on (its payload: the row's seq).
HISTORY_CHANNEL = "reservation_history"

LOCK_HELD_SQL = f"SELECT {COLUMNS} FROM reservations WHERE phone_number = $1 AND {HELD} FOR UPDATE"
LOCK_UPCOMING_SQL = (
    f"SELECT {COLUMNS} FROM reservations"
    f" WHERE phone_number = $1 AND {HELD} AND reservation_date >= $2 FOR UPDATE"
)

# Nothing is returned when another booking for the phone won the race: the caller then reads
# (and locks) that one.
INSERT_SQL = f"""
INSERT INTO reservations
    (phone_number, name, reservation_date, reservation_time, party_size, other_info,
     confirmation_number, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (phone_number) WHERE {HELD} DO NOTHING
RETURNING {COLUMNS}
"""

# A past booking's row becomes the new booking (the old one lives on in the history).
REPLACE_SQL = f"""
UPDATE reservations SET
    name = $2, reservation_date = $3, reservation_time = $4, party_size = $5, other_info = $6,
    confirmation_number = $7, status = $8, created_at = now()
WHERE id = $1
RETURNING {COLUMNS}
"""

CHANGE_SQL = f"""
UPDATE reservations SET
    name = $2, reservation_date = $3, reservation_time = $4, party_size = $5, other_info = $6
WHERE id = $1
RETURNING {COLUMNS}
"""

CANCEL_SQL = f"UPDATE reservations SET status = 'cancelled' WHERE id = $1 RETURNING {COLUMNS}"
CONFIRM_SQL = f"UPDATE reservations SET status = 'confirmed' WHERE id = $1 RETURNING {COLUMNS}"

HISTORY_LOCK_SQL = "SELECT pg_advisory_xact_lock($1)"
# One statement, one round trip: the history row, its NOTIFY, and the guest's texts ($9: the
# text's kind; see `outbox.outbox_ctes`).
RECORD_SQL = f"""
WITH entry AS (
    INSERT INTO reservation_history
        (reservation_id, phone_number, action, source, call_id, before, after, override)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING seq
){outbox_ctes("entry")}
SELECT seq, pg_notify('{HISTORY_CHANNEL}', seq::text) FROM entry
"""
