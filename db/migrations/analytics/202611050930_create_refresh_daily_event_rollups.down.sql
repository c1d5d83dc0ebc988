-- Drop refresh_daily_event_rollups()
DROP FUNCTION refresh_daily_event_rollups(date, date);
