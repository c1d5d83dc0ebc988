-- Index orders by account and placement time
-- Built concurrently: must stay the only statement in this file.
CREATE INDEX CONCURRENTLY orders_account_id_placed_at_idx ON orders (account_id, placed_at DESC);
