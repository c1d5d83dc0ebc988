-- Drop index orders_account_id_placed_at_idx
-- Dropped concurrently: must stay the only statement in this file.
DROP INDEX CONCURRENTLY IF EXISTS orders_account_id_placed_at_idx;
