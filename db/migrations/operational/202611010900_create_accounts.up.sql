-- Create accounts table
CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY,
    email text NOT NULL,
    display_name text NOT NULL,
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_pkey PRIMARY KEY (id),
    CONSTRAINT accounts_email_key UNIQUE (email),
    CONSTRAINT accounts_email_check CHECK (email = lower(email) AND email LIKE '%_@_%' AND length(email) <= 320),
    CONSTRAINT accounts_display_name_check CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
    CONSTRAINT accounts_status_check CHECK (status IN ('active', 'suspended', 'closed')),
    CONSTRAINT accounts_updated_at_check CHECK (updated_at >= created_at)
);

COMMENT ON TABLE accounts IS 'Customer accounts; email is stored lower-case.';
