-- Create refresh_daily_event_rollups() to recompute rollups for a range of UTC days
CREATE FUNCTION refresh_daily_event_rollups(from_day date, to_day date) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    written bigint;
BEGIN
    IF from_day IS NULL OR to_day IS NULL OR to_day < from_day THEN
        RAISE EXCEPTION 'invalid day range [%, %)', from_day, to_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- Days in [from_day, to_day) are recomputed from scratch.
    DELETE FROM daily_event_rollups
    WHERE day >= from_day AND day < to_day;

    INSERT INTO daily_event_rollups (day, event_type, event_count, distinct_accounts, refreshed_at)
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date,
           e.event_type,
           count(*),
           count(DISTINCT e.account_id),
           now()
    FROM events AS e
    WHERE e.occurred_at >= (from_day::timestamp AT TIME ZONE 'UTC')
      AND e.occurred_at < (to_day::timestamp AT TIME ZONE 'UTC')
    GROUP BY 1, 2;

    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

COMMENT ON FUNCTION refresh_daily_event_rollups(date, date) IS 'Recompute daily_event_rollups for UTC days in [from_day, to_day); returns the number of rollup rows written.';
