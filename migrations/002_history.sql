-- Change, cancel and the append-only history of every booking.
--
-- A reservation row now has its own id and a status: a cancelled booking stays in the table
-- (the staff book lists it), and "one upcoming booking per phone" becomes a unique index over
-- the confirmed rows only, so a phone whose booking was cancelled can book again.
ALTER TABLE reservations ADD COLUMN id bigserial;
ALTER TABLE reservations DROP CONSTRAINT reservations_pkey;
ALTER TABLE reservations ADD PRIMARY KEY (id);
ALTER TABLE reservations
    ADD COLUMN status text NOT NULL DEFAULT 'confirmed'
    CHECK (status IN ('confirmed', 'cancelled'));

CREATE UNIQUE INDEX reservations_phone_confirmed_key
    ON reservations (phone_number) WHERE status = 'confirmed';

-- The staff book's order and its keyset pagination: (date, time, id) is unique.
DROP INDEX reservations_date_time_idx;
CREATE INDEX reservations_book_idx ON reservations (reservation_date, reservation_time, id);

-- One row per change, written in the same transaction as the change itself. `seq` numbers the
-- rows in commit order (the writers take an advisory lock just before inserting, held until
-- they commit), so "every row after N" is a complete answer: the live feed's resume point.
CREATE TABLE reservation_history (
    seq            bigserial   PRIMARY KEY,
    reservation_id bigint      NOT NULL,
    phone_number   text        NOT NULL,
    action         text        NOT NULL
                               CHECK (action IN ('created', 'changed', 'cancelled', 'replaced')),
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    source         text        NOT NULL CHECK (source IN ('rest', 'voice', 'staff')),
    call_id        text        CHECK (char_length(call_id) <= 200),
    before         jsonb,
    after          jsonb,
    CHECK (before IS NOT NULL OR after IS NOT NULL)
);

CREATE INDEX reservation_history_phone_idx ON reservation_history (phone_number, seq);

-- Append-only: nothing about a booking is ever lost.
CREATE FUNCTION reservation_history_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reservation_history is append-only (% refused)', TG_OP;
END;
$$;

CREATE TRIGGER reservation_history_append_only
    BEFORE UPDATE OR DELETE ON reservation_history
    FOR EACH ROW EXECUTE FUNCTION reservation_history_append_only();
