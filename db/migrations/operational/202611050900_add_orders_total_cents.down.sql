-- Drop orders.total_cents
ALTER TABLE orders DROP COLUMN total_cents;
