-- Create daily_event_rollups table
CREATE TABLE daily_event_rollups (
    day date NOT NULL,
    event_type text NOT NULL,
    event_count bigint NOT NULL,
    distinct_accounts bigint NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT daily_event_rollups_pkey PRIMARY KEY (day, event_type),
    CONSTRAINT daily_event_rollups_event_count_check CHECK (event_count > 0),
    CONSTRAINT daily_event_rollups_distinct_accounts_check CHECK (distinct_accounts BETWEEN 0 AND event_count)
);

COMMENT ON TABLE daily_event_rollups IS 'Per UTC day and event type: event count and distinct accounts; filled by refresh_daily_event_rollups().';
