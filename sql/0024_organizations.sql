-- Organizations: a team shares one balance, plan, model allowlist and spend cap; each member has
-- a role and may have an org budget of their own. An org key (``api_keys.org_id``) draws on the
-- org's credits and counts against the org's budget, its member's org budget and its own cap,
-- never its user's personal credits or cap. Its holds and ledger rows name the org.
CREATE TABLE organizations (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    plan text NOT NULL REFERENCES plans (name),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- Like a user's: may go below zero by a charge above its hold (a debt), never by a debit.
    credits numeric(20, 10) NOT NULL DEFAULT 0,
    reserved_credits numeric(20, 10) NOT NULL DEFAULT 0 CHECK (reserved_credits >= 0),
    allowed_models text[] NOT NULL DEFAULT '{}',
    budget numeric(20, 10) CHECK (budget >= 0),
    budget_period text NOT NULL DEFAULT 'monthly' CHECK (budget_period IN ('daily', 'weekly', 'monthly', 'never')),
    budget_alert_thresholds numeric[] NOT NULL DEFAULT '{0.5,0.8,1.0}',
    budget_period_start timestamptz,
    budget_spent numeric(20, 10) NOT NULL DEFAULT 0,
    budget_reserved numeric(20, 10) NOT NULL DEFAULT 0 CHECK (budget_reserved >= 0),
    budget_alerted numeric NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organizations_name_key ON organizations (lower(name));

-- A member's budget columns are a spend cap's, as on users and keys, so the budget statements
-- serve all four scopes (``billing.budget_queries.OWNERS``).
CREATE TABLE org_members (
    id bigserial PRIMARY KEY,
    org_id bigint NOT NULL REFERENCES organizations (id),
    user_id bigint NOT NULL REFERENCES users (id),
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    budget numeric(20, 10) CHECK (budget >= 0),
    budget_period text NOT NULL DEFAULT 'monthly' CHECK (budget_period IN ('daily', 'weekly', 'monthly', 'never')),
    budget_alert_thresholds numeric[] NOT NULL DEFAULT '{0.5,0.8,1.0}',
    budget_period_start timestamptz,
    budget_spent numeric(20, 10) NOT NULL DEFAULT 0,
    budget_reserved numeric(20, 10) NOT NULL DEFAULT 0 CHECK (budget_reserved >= 0),
    budget_alerted numeric NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, user_id)
);
CREATE INDEX org_members_user_idx ON org_members (user_id);

-- An org key belongs to its org for good (a rotation's replacement keeps it); leaving the org
-- revokes it.
ALTER TABLE api_keys ADD COLUMN org_id bigint REFERENCES organizations (id);
CREATE INDEX api_keys_org_idx ON api_keys (org_id) WHERE org_id IS NOT NULL;

-- An org key's hold sits on the org's balance (not its user's) and on the budgets it counts against.
ALTER TABLE credit_holds
    ADD COLUMN org_id bigint,
    ADD COLUMN org_budgeted boolean NOT NULL DEFAULT false,
    ADD COLUMN member_budgeted boolean NOT NULL DEFAULT false;

-- The org's ledger: its grants (no user) and its members' usage (user_id: who spent it;
-- balance_after: the org's balance).
ALTER TABLE credit_transactions
    ADD COLUMN org_id bigint REFERENCES organizations (id),
    ALTER COLUMN user_id DROP NOT NULL,
    ADD CONSTRAINT credit_transactions_owner_check CHECK (user_id IS NOT NULL OR org_id IS NOT NULL);
CREATE INDEX credit_transactions_org_idx ON credit_transactions (org_id, created_at DESC) WHERE org_id IS NOT NULL;

-- The day's totals keep an org's use apart from its members' personal use (0: personal), so each
-- quota is seeded from what counted against it.
ALTER TABLE usage_daily_totals ADD COLUMN org_id bigint NOT NULL DEFAULT 0;
ALTER TABLE usage_daily_totals DROP CONSTRAINT usage_daily_totals_pkey;
ALTER TABLE usage_daily_totals ADD PRIMARY KEY (user_id, day, model, endpoint, org_id);

-- Which org a request was charged to (its key's), for the org's usage report and group_by=org.
ALTER TABLE usage_records ADD COLUMN org_id bigint;
CREATE INDEX usage_records_org_time_idx ON usage_records (org_id, created_at) WHERE org_id IS NOT NULL;
ALTER TABLE generation_lookups ADD COLUMN org_id bigint;

-- A key of a suspended org is not usable, like one of a suspended user.
CREATE FUNCTION api_key_rejection(key_status text, grace_until timestamptz, expires_at timestamptz, user_status text,
                                  org_status text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(api_key_rejection(key_status, grace_until, expires_at, user_status),
                    CASE WHEN org_status <> 'active' THEN 'org_suspended' END)
$$;

-- Spend reports group and filter by org (``group_by=org``, an org's own usage report): the
-- report rollups and the views they are computed from carry the org a request was charged to.
ALTER TABLE usage_key_daily ADD COLUMN org_id bigint;
ALTER TABLE usage_tag_daily ADD COLUMN org_id bigint;
CREATE INDEX usage_key_daily_org_day_idx ON usage_key_daily (org_id, day) WHERE org_id IS NOT NULL;
CREATE INDEX usage_tag_daily_org_day_idx ON usage_tag_daily (org_id, day) WHERE org_id IS NOT NULL;

CREATE OR REPLACE VIEW usage_report_records AS
SELECT created_at, (created_at AT TIME ZONE 'UTC')::date AS day, user_id, api_key_id,
       coalesce(served_model, model) AS model, endpoint, 1 AS requests,
       (status <> 'success')::int AS errors, prompt_tokens, completion_tokens, cost, latency_ms AS latency_ms_sum, tags,
       org_id
FROM usage_records;

CREATE OR REPLACE VIEW usage_report_tag_records AS
SELECT r.created_at, r.day, r.user_id, r.api_key_id, r.model, r.endpoint, tag, r.requests, r.errors,
       r.prompt_tokens, r.completion_tokens, r.cost, r.latency_ms_sum, r.org_id
FROM usage_report_records r
CROSS JOIN LATERAL unnest(CASE WHEN r.tags = '{}' THEN ARRAY[NULL::text] ELSE r.tags END) AS tag;
