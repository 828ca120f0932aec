-- Plans, users, API keys, the credit ledger and the API-key audit log.

CREATE TABLE plans (
    name text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    requests_per_minute integer NOT NULL CHECK (requests_per_minute >= 0),
    requests_per_hour integer NOT NULL CHECK (requests_per_hour >= 0),
    requests_per_day integer NOT NULL CHECK (requests_per_day >= 0),
    tokens_per_minute bigint NOT NULL CHECK (tokens_per_minute >= 0),
    tokens_per_hour bigint NOT NULL CHECK (tokens_per_hour >= 0),
    tokens_per_day bigint NOT NULL CHECK (tokens_per_day >= 0),
    daily_request_quota integer NOT NULL CHECK (daily_request_quota >= 0),
    monthly_request_quota integer NOT NULL CHECK (monthly_request_quota >= 0),
    daily_token_quota bigint NOT NULL CHECK (daily_token_quota >= 0),
    monthly_token_quota bigint NOT NULL CHECK (monthly_token_quota >= 0),
    max_concurrent_requests integer NOT NULL CHECK (max_concurrent_requests >= 0)
);

INSERT INTO plans VALUES
  ('trial', 'Evaluation: a few requests a minute', 10, 100, 500, 20000, 200000, 1000000,
   500, 5000, 1000000, 10000000, 2),
  ('dev', 'Single developer', 60, 2000, 20000, 200000, 4000000, 40000000,
   20000, 300000, 40000000, 600000000, 8),
  ('team', 'Production team', 600, 30000, 500000, 2000000, 60000000, 1000000000,
   500000, 10000000, 1000000000, 20000000000, 32),
  ('enterprise', 'High volume; limits set per customer', 12000, 500000, 10000000, 50000000,
   1000000000, 20000000000, 10000000, 200000000, 20000000000, 400000000000, 256);

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    username text,
    role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    plan text NOT NULL REFERENCES plans (name),
    credits numeric(20, 10) NOT NULL DEFAULT 0 CHECK (credits >= 0),
    -- Held for requests in flight; spendable balance is credits - reserved_credits.
    reserved_credits numeric(20, 10) NOT NULL DEFAULT 0 CHECK (reserved_credits >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_created_at_idx ON users (created_at);

-- Exact counts that must stay O(1) to read however large the table grows (/health user_count).
CREATE TABLE table_counts (
    name text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO table_counts VALUES ('users', 0);

CREATE FUNCTION count_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE table_counts SET value = value + 1 WHERE name = 'users';
    ELSE
        UPDATE table_counts SET value = value - 1 WHERE name = 'users';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER users_count AFTER INSERT OR DELETE ON users FOR EACH ROW EXECUTE FUNCTION count_users();

CREATE TABLE rate_limit_overrides (
    user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    requests_per_minute integer CHECK (requests_per_minute >= 0),
    requests_per_hour integer CHECK (requests_per_hour >= 0),
    requests_per_day integer CHECK (requests_per_day >= 0),
    tokens_per_minute bigint CHECK (tokens_per_minute >= 0),
    tokens_per_hour bigint CHECK (tokens_per_hour >= 0),
    tokens_per_day bigint CHECK (tokens_per_day >= 0),
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL,
    environment text NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
    -- HMAC-SHA256 of the full key with KEY_HASH_SECRET; the key itself is never stored.
    key_hash text NOT NULL UNIQUE,
    prefix text NOT NULL,
    last4 text NOT NULL,
    scopes text[] NOT NULL DEFAULT '{}',
    ip_allowlist cidr[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'rotated', 'revoked')),
    expires_at timestamptz,
    -- A rotated key keeps working until this moment (the rotation's grace period).
    grace_until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE UNIQUE INDEX api_keys_active_name_key ON api_keys (user_id, name) WHERE status = 'active';
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

CREATE TABLE credit_transactions (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    amount numeric(20, 10) NOT NULL,
    balance_after numeric(20, 10) NOT NULL,
    kind text NOT NULL CHECK (kind IN ('grant', 'debit', 'usage', 'refund', 'initial')),
    reason text NOT NULL,
    actor text NOT NULL,
    request_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_transactions_user_idx ON credit_transactions (user_id, created_at DESC);

CREATE TABLE api_key_audit_logs (
    id bigserial PRIMARY KEY,
    user_id bigint REFERENCES users (id) ON DELETE SET NULL,
    api_key_id bigint REFERENCES api_keys (id) ON DELETE SET NULL,
    action text NOT NULL,
    actor text NOT NULL,
    ip inet,
    user_agent text,
    request_id text,
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_user_time_idx ON api_key_audit_logs (user_id, created_at DESC, id DESC);
CREATE INDEX audit_time_idx ON api_key_audit_logs (created_at DESC, id DESC);
CREATE INDEX audit_key_time_idx ON api_key_audit_logs (api_key_id, created_at DESC, id DESC);
CREATE INDEX audit_action_time_idx ON api_key_audit_logs (action, created_at DESC, id DESC);
