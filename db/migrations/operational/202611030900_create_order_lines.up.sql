-- Create order_lines table
CREATE TABLE order_lines (
    id bigint GENERATED ALWAYS AS IDENTITY,
    order_id bigint NOT NULL,
    line_no integer NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL,
    unit_price_cents bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_lines_pkey PRIMARY KEY (id),
    CONSTRAINT order_lines_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
    -- Also serves the foreign key: lookups by order_id use this index.
    CONSTRAINT order_lines_order_id_line_no_key UNIQUE (order_id, line_no),
    CONSTRAINT order_lines_line_no_check CHECK (line_no > 0),
    CONSTRAINT order_lines_sku_check CHECK (sku ~ '^[A-Z0-9][A-Z0-9-]{0,63}$'),
    CONSTRAINT order_lines_quantity_check CHECK (quantity > 0),
    CONSTRAINT order_lines_unit_price_cents_check CHECK (unit_price_cents >= 0)
);

COMMENT ON TABLE order_lines IS 'One line per product on an order; line_no is 1-based within the order.';
