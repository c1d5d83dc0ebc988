-- Drop daily_event_rollups table
DROP TABLE daily_event_rollups;
