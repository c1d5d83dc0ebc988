-- Create events table
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    event_type text NOT NULL,
    account_id bigint,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT events_pkey PRIMARY KEY (id),
    CONSTRAINT events_event_type_check CHECK (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$' AND length(event_type) <= 100),
    CONSTRAINT events_account_id_check CHECK (account_id > 0),
    CONSTRAINT events_payload_check CHECK (jsonb_typeof(payload) = 'object')
);

COMMENT ON TABLE events IS 'Append-only product events; account_id refers to operational accounts.id (no foreign key across databases).';
