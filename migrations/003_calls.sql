-- One row per call, whatever carried it: what happened, what it cost, what was said.
--
-- Written by the call's process while the call runs (every CALL_RECORD_FLUSH_S, so a crash loses
-- at most that) and once more when it ends. `last_seen` is the database's clock at the latest
-- write: a row still `live` whose last_seen is long past belongs to a process that died, and is
-- marked `interrupted` (by any process, at its start-up and on its sweeps); a process that was
-- only cut off from the database writes its row back to `live` on its next flush.
CREATE TABLE calls (
    id                   uuid        PRIMARY KEY,
    sid                  text        NOT NULL,  -- the process-local id in the logs ("s12")
    channel              text        NOT NULL,  -- browser, sdk, phone, sip
    caller               text,                  -- the caller's number in full: staff only
    status               text        NOT NULL CHECK (status IN ('live', 'ended', 'interrupted')),
    started_at           timestamptz NOT NULL,
    ended_at             timestamptz,
    last_seen            timestamptz NOT NULL DEFAULT now(),
    end_reason           text,
    outcome              text        NOT NULL DEFAULT 'none'
                                     CHECK (outcome IN ('booked', 'changed', 'cancelled',
                                                        'looked_up', 'none', 'failed')),
    confirmation_number  text,
    reply_count          integer     NOT NULL DEFAULT 0,
    reply_latency_p50_ms real,
    reply_latency_max_ms real,
    first_audio_ms       real,
    tool_calls           jsonb       NOT NULL DEFAULT '[]'::jsonb,  -- [{name, ok, ms, at_s}]
    usage                jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- summed token counts
    cost_usd             numeric(12, 6) NOT NULL DEFAULT 0,
    transcript           jsonb,      -- [{at_s, role, text | tool fields}]; NULL: none kept
    transcript_purged_at timestamptz -- set when TRANSCRIPT_RETENTION_DAYS removed it
);

-- The day's calls (staff list, newest first, keyset on (started_at, id)) and the day's cost.
CREATE INDEX calls_started_idx ON calls (started_at, id);
-- Start-up's search for rows a dead process left open.
CREATE INDEX calls_live_idx ON calls (last_seen) WHERE status = 'live';
-- The retention sweep: only rows that still hold a transcript.
CREATE INDEX calls_transcript_idx ON calls (started_at) WHERE transcript IS NOT NULL;
