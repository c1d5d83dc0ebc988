-- Read-only smoke queries for the analytics database: the read paths the services and the rollup job depend on.
-- `scripts/db/smoke-test.sh --component analytics --env migrate.env` runs them after an apply or a rollback,
-- each in its own READ ONLY transaction (statement timeout 30 s); any error fails the smoke test.
--
-- Every query carries `-- since: <migration id>` and runs only when the database is at that migration or later, so
-- the file holds for every version a rollback can leave (skipped queries are reported). A query without `since`
-- must work on an empty database. Keep them cheap (LIMIT, small aggregates) and never select restricted columns
-- (configs/data-classification.yml: events.payload): results are discarded, but a slow statement may be logged.

-- since: 202611010930_create_events
-- Latest events by type, over a bounded sample.
SELECT event_type, count(*) FROM (SELECT event_type FROM events ORDER BY id DESC LIMIT 1000) AS e GROUP BY event_type;

-- since: 202611030930_index_events_type_occurred_at
-- One event type over the last day: the shape events_event_type_occurred_at_idx serves.
SELECT count(*)
FROM (SELECT 1 FROM events
      WHERE event_type = 'account.created' AND occurred_at >= now() - interval '1 day'
      LIMIT 1000) AS e;

-- since: 202611040930_create_daily_event_rollups
-- The last week of rollups.
SELECT day, sum(event_count) AS events, sum(distinct_accounts) AS accounts
FROM daily_event_rollups
WHERE day >= current_date - 7
GROUP BY day
ORDER BY day;

-- since: 202611050930_create_refresh_daily_event_rollups
-- The rollup job's function resolves by name and signature (calling it would write).
SELECT 'refresh_daily_event_rollups(date, date)'::regprocedure;
