-- The availability engine: the restaurant's profile, booking requests, and the tables a booking
-- holds, with PostgreSQL itself refusing to seat two bookings at one table at once.

-- One row: the restaurant's profile (hours, closures, covers, tables...), as JSON validated by
-- server.book.restaurant. Bookings of one date also lock this row's id in an advisory lock (see
-- server.book.seating), so a re-check and its write can never interleave with another booking.
CREATE TABLE restaurant (
    id         integer     PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    profile    jsonb       NOT NULL CHECK (jsonb_typeof(profile) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A party larger than max_party_size is a request (staff confirm or decline it), not a booking.
-- A phone holds at most one upcoming booking or request.
ALTER TABLE reservations DROP CONSTRAINT reservations_status_check;
ALTER TABLE reservations
    ADD CONSTRAINT reservations_status_check
    CHECK (status IN ('confirmed', 'requested', 'cancelled'));
DROP INDEX reservations_phone_confirmed_key;
CREATE UNIQUE INDEX reservations_phone_confirmed_key
    ON reservations (phone_number) WHERE status IN ('confirmed', 'requested');

-- Staff confirm or decline requests; a staff booking past the limits is marked as an override.
ALTER TABLE reservation_history DROP CONSTRAINT reservation_history_action_check;
ALTER TABLE reservation_history
    ADD CONSTRAINT reservation_history_action_check
    CHECK (action IN ('created', 'changed', 'cancelled', 'replaced', 'confirmed', 'declined'));
ALTER TABLE reservation_history ADD COLUMN override boolean NOT NULL DEFAULT false;

-- One row per table a booking holds (a combination holds one row per table), for its arrival
-- to the end of its dining time. The exclusion constraint is the guarantee: two rows for one
-- table with overlapping times cannot both commit, whatever any process checked before.
-- No foreign key to reservations: the writers delete a booking's holds when it is cancelled,
-- moved or replaced, in the same transaction, and tests truncate reservations on their own.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE table_holds (
    reservation_id bigint    NOT NULL,
    table_name     text      NOT NULL CHECK (char_length(table_name) BETWEEN 1 AND 40),
    during         tstzrange NOT NULL CHECK (NOT isempty(during)),
    PRIMARY KEY (reservation_id, table_name),
    CONSTRAINT table_holds_no_overlap EXCLUDE USING gist (table_name WITH =, during WITH &&)
);
