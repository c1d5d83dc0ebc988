-- Read-only smoke queries for the operational database: the read paths the services depend on.
-- `scripts/db/smoke-test.sh --component operational --env migrate.env` runs them after an apply or a rollback,
-- each in its own READ ONLY transaction (statement timeout 30 s); any error fails the smoke test.
--
-- Every query carries `-- since: <migration id>` and runs only when the database is at that migration or later, so
-- the file holds for every version a rollback can leave (skipped queries are reported). A query without `since`
-- must work on an empty database. Keep them cheap (LIMIT, small aggregates) and never select restricted columns
-- (configs/data-classification.yml): results are discarded, but the server may still log a slow statement.

-- since: 202611010900_create_accounts
-- Accounts by status, over a bounded sample.
SELECT status, count(*) FROM (SELECT status FROM accounts ORDER BY id LIMIT 1000) AS a GROUP BY status;

-- since: 202611020900_create_orders
-- Latest orders with their account (the foreign key's join).
SELECT o.id, o.status, o.currency, o.placed_at
FROM orders AS o JOIN accounts AS a ON a.id = o.account_id
ORDER BY o.id DESC
LIMIT 100;

-- since: 202611030900_create_order_lines
-- Line totals of the latest orders.
SELECT l.order_id, sum(l.quantity::bigint * l.unit_price_cents) AS total_cents
FROM order_lines AS l
WHERE l.order_id IN (SELECT id FROM orders ORDER BY id DESC LIMIT 100)
GROUP BY l.order_id;

-- since: 202611040900_index_orders_account_placed_at
-- An account's most recent orders: the shape orders_account_id_placed_at_idx serves.
SELECT o.id, o.placed_at
FROM orders AS o
WHERE o.account_id = (SELECT min(id) FROM accounts)
ORDER BY o.placed_at DESC
LIMIT 10;

-- since: 202611050900_add_orders_total_cents
-- Stored order totals.
SELECT o.id, o.total_cents FROM orders AS o ORDER BY o.id DESC LIMIT 100;
