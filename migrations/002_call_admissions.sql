-- Calls per client address, shared by every server process, so that MAX_CALLS_PER_CLIENT
-- (concurrent) and MAX_NEW_CALLS_PER_MIN hold however many processes serve the socket.
-- One row per admitted call: live while ended_at is NULL and its lease is current. A process
-- renews the leases of its live calls every few seconds; the rows of a process that died stop
-- counting when their lease runs out, so a crash never blocks a client for longer than that.
-- UNLOGGED: no WAL for rows that only matter for a minute (after a PostgreSQL crash the table
-- starts empty and the limits count again from zero).
CREATE UNLOGGED TABLE call_admissions (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    lease_until timestamptz NOT NULL
);

CREATE INDEX call_admissions_client_idx ON call_admissions (client, started_at);

-- Admit one call for p_client, or say which limit refuses it; one round trip per call start.
-- The advisory lock makes the count and the insert of one client's admissions take turns across
-- processes; each statement of a (volatile) function sees what earlier holders committed.
CREATE FUNCTION admit_call(
    p_client text, p_max_live integer, p_per_min integer, p_lease_s double precision
) RETURNS TABLE (slot_id bigint, refused text, retry_after_s double precision)
LANGUAGE plpgsql AS $$
DECLARE
    at_now   timestamptz;
    live     integer;
    recent   integer;
    oldest   timestamptz;
    new_id   bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7321, hashtext(p_client));
    at_now := clock_timestamp();
    IF p_max_live > 0 THEN
        SELECT count(*) INTO live FROM call_admissions
         WHERE client = p_client AND ended_at IS NULL AND lease_until > at_now;
        IF live >= p_max_live THEN
            RETURN QUERY SELECT NULL::bigint, 'too_many_calls'::text, 0::double precision;
            RETURN;
        END IF;
    END IF;
    IF p_per_min > 0 THEN
        SELECT count(*), min(started_at) INTO recent, oldest FROM call_admissions
         WHERE client = p_client AND started_at > at_now - interval '1 minute';
        IF recent >= p_per_min THEN
            RETURN QUERY SELECT NULL::bigint, 'too_many_new_calls'::text,
                greatest(extract(epoch FROM oldest + interval '1 minute' - at_now), 0)::double precision;
            RETURN;
        END IF;
    END IF;
    INSERT INTO call_admissions (client, started_at, lease_until)
    VALUES (p_client, at_now, at_now + p_lease_s * interval '1 second')
    RETURNING id INTO new_id;
    RETURN QUERY SELECT new_id, NULL::text, 0::double precision;
END;
$$;
