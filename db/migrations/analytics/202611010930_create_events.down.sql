-- Drop events table
DROP TABLE events;
