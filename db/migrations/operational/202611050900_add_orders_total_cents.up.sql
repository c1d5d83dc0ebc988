-- Add orders.total_cents and backfill it from order_lines
-- A NOT NULL column with a constant default is a catalog-only change (no table rewrite).
ALTER TABLE orders ADD COLUMN total_cents bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN orders.total_cents IS 'Sum of quantity * unit_price_cents over the order''s lines.';

UPDATE orders AS o
SET total_cents = l.total_cents
FROM (
    SELECT order_id, sum(quantity::bigint * unit_price_cents)::bigint AS total_cents
    FROM order_lines
    GROUP BY order_id
) AS l
WHERE l.order_id = o.id
  AND o.total_cents IS DISTINCT FROM l.total_cents;
