-- Index events by type and time
-- Built concurrently: must stay the only statement in this file.
CREATE INDEX CONCURRENTLY events_event_type_occurred_at_idx ON events (event_type, occurred_at);
