-- Guest messages (SMS): the outbox, opt-outs, replies, and the manage page's source `guest`.
--
-- Each outgoing text is a row of `messages`, written in the same transaction as the booking
-- change that causes it (`server.book.outbox`, called from the history writer): a rollback
-- sends nothing and a commit cannot lose its text. Every server process runs a sender that
-- claims due rows with FOR UPDATE SKIP LOCKED and a lease (`next_attempt_at` pushed ahead
-- while it sends), so two processes never send the same row at once and a process killed
-- mid-send leaves the row to the next sender once the lease has run out.

-- The manage page (/r/<token>) changes bookings on the guest's behalf.
ALTER TABLE reservation_history DROP CONSTRAINT reservation_history_source_check;
ALTER TABLE reservation_history ADD CONSTRAINT reservation_history_source_check
    CHECK (source IN ('rest', 'voice', 'staff', 'guest'));

CREATE TABLE messages (
    id              bigserial   PRIMARY KEY,
    -- No foreign key: reservations are truncated and replaced freely, the outbox stays as sent.
    reservation_id  bigint      NOT NULL,
    phone_number    text        NOT NULL,
    kind            text        NOT NULL
                    CHECK (kind IN ('confirmation', 'change', 'cancellation', 'request', 'reminder')),
    event           text        NOT NULL,  -- the history action behind it, or 'reminder'
    source          text,                  -- who made that change (the history's source)
    history_seq     bigint,                -- that history row (NULL for reminders)
    booking         jsonb       NOT NULL,  -- the booking as it was after the change
    previous        jsonb,                 -- ... and before it (changes, cancellations)
    remind_before   interval,              -- reminders: how long before the booking
    due_at          timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed',
                                      'skipped_opted_out', 'skipped_not_configured', 'dropped')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When a sender may (next) claim the row: `due_at` at first, then the lease's end while
    -- `sending`, then the retry's time after a failed attempt.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    body            text,                  -- the text, rendered when the row is first claimed
    twilio_sid      text        UNIQUE,
    error           text        CHECK (char_length(error) <= 1000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The senders' claim: due rows, oldest first.
CREATE INDEX messages_due_idx ON messages (next_attempt_at) WHERE status IN ('pending', 'sending');
-- The staff's view of one guest, and a changed booking's pending reminders.
CREATE INDEX messages_phone_idx ON messages (phone_number, id);
CREATE INDEX messages_reminders_idx ON messages (reservation_id)
    WHERE kind = 'reminder' AND status = 'pending';

-- Numbers that replied STOP (or another opt-out word): nothing is sent to them until START.
CREATE TABLE sms_opt_outs (
    phone_number text        PRIMARY KEY,
    opted_out_at timestamptz NOT NULL DEFAULT now()
);

-- Every reply a guest sent, for the staff (Twilio may deliver one twice: its SID is unique).
CREATE TABLE sms_replies (
    id           bigserial   PRIMARY KEY,
    message_sid  text        NOT NULL UNIQUE,
    phone_number text        NOT NULL,
    body         text        NOT NULL CHECK (char_length(body) <= 2000),
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_replies_phone_idx ON sms_replies (phone_number, id);

-- Secrets the processes must share and that nobody configured (the manage links' key when
-- MANAGE_LINK_SECRET is unset): made once by whichever process comes first.
CREATE TABLE server_secrets (
    name       text        PRIMARY KEY,
    value      bytea       NOT NULL CHECK (octet_length(value) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
