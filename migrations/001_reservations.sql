-- One row per phone number: the primary key is what makes "one upcoming reservation per
-- phone" hold across any number of server processes.
CREATE TABLE reservations (
    phone_number        text        PRIMARY KEY CHECK (phone_number ~ '^\+[1-9][0-9]{6,14}$'),
    name                text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    reservation_date    date        NOT NULL,
    reservation_time    time        NOT NULL,
    party_size          integer     NOT NULL CHECK (party_size BETWEEN 1 AND 20),
    other_info          jsonb       NOT NULL DEFAULT '{}'::jsonb
                                    CHECK (jsonb_typeof(other_info) = 'object'),
    confirmation_number char(6)     NOT NULL UNIQUE
                                    CHECK (confirmation_number ~ '^[2-9A-HJKMNP-Z]{6}$'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX reservations_date_time_idx ON reservations (reservation_date, reservation_time);

-- updated_at stays current whatever statement touches the row.
CREATE FUNCTION reservations_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER reservations_touch_updated_at
    BEFORE UPDATE ON reservations
    FOR EACH ROW EXECUTE FUNCTION reservations_touch_updated_at();
