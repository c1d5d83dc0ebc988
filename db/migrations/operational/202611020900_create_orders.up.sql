-- Create orders table
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY,
    account_id bigint NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    currency text NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orders_pkey PRIMARY KEY (id),
    CONSTRAINT orders_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT orders_status_check CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled', 'refunded')),
    CONSTRAINT orders_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT orders_updated_at_check CHECK (updated_at >= created_at)
);

COMMENT ON TABLE orders IS 'Orders placed by accounts; amounts live on order_lines.';
