-- Drop index events_event_type_occurred_at_idx
-- Dropped concurrently: must stay the only statement in this file.
DROP INDEX CONCURRENTLY IF EXISTS events_event_type_occurred_at_idx;
