-- Allow UPDATE, DELETE and TRUNCATE on events again
DROP TRIGGER events_no_truncate ON events;
DROP TRIGGER events_append_only ON events;
DROP FUNCTION events_reject_change();
