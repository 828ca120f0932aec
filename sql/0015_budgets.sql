-- Spend caps per user and per key: ``budget`` USD per ``budget_period`` (UTC day, ISO week from
-- Monday, calendar month, or never resetting), alerts at fractions of it. The period's settled
-- spend and the holds of requests in flight are kept on the same row as the cap, so the hold
-- (which locks the user's row, then the key's) checks spend + holds + this request <= cap exactly
-- across workers and instances. ``budget_period_start`` names the period ``budget_spent`` and
-- ``budget_alerted`` (the highest threshold already announced) belong to; an older one means 0.
CREATE FUNCTION budget_period_start(period text, at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE period
        WHEN 'never' THEN '-infinity'::timestamptz
        ELSE date_trunc(CASE period WHEN 'daily' THEN 'day' WHEN 'weekly' THEN 'week' ELSE 'month' END,
                        at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END
$$;

CREATE FUNCTION budget_period_end(period text, at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE period
        WHEN 'never' THEN NULL
        ELSE budget_period_start(period, at) + CASE period WHEN 'daily' THEN interval '1 day'
            WHEN 'weekly' THEN interval '1 week' ELSE interval '1 month' END END
$$;

ALTER TABLE users
    ADD COLUMN budget numeric(20, 10) CHECK (budget >= 0),
    ADD COLUMN budget_period text NOT NULL DEFAULT 'monthly'
        CHECK (budget_period IN ('daily', 'weekly', 'monthly', 'never')),
    ADD COLUMN budget_alert_thresholds numeric[] NOT NULL DEFAULT '{0.5,0.8,1.0}',
    ADD COLUMN budget_period_start timestamptz,
    ADD COLUMN budget_spent numeric(20, 10) NOT NULL DEFAULT 0,
    ADD COLUMN budget_reserved numeric(20, 10) NOT NULL DEFAULT 0 CHECK (budget_reserved >= 0),
    ADD COLUMN budget_alerted numeric NOT NULL DEFAULT 0;

ALTER TABLE api_keys
    ADD COLUMN budget numeric(20, 10) CHECK (budget >= 0),
    ADD COLUMN budget_period text NOT NULL DEFAULT 'monthly'
        CHECK (budget_period IN ('daily', 'weekly', 'monthly', 'never')),
    ADD COLUMN budget_alert_thresholds numeric[] NOT NULL DEFAULT '{0.5,0.8,1.0}',
    ADD COLUMN budget_period_start timestamptz,
    ADD COLUMN budget_spent numeric(20, 10) NOT NULL DEFAULT 0,
    ADD COLUMN budget_reserved numeric(20, 10) NOT NULL DEFAULT 0 CHECK (budget_reserved >= 0),
    ADD COLUMN budget_alerted numeric NOT NULL DEFAULT 0;

-- Whether a hold also counts against the user's and the key's budget_reserved (so its release
-- gives back exactly what it took, even if a budget was set or removed meanwhile).
ALTER TABLE credit_holds
    ADD COLUMN user_budgeted boolean NOT NULL DEFAULT false,
    ADD COLUMN key_budgeted boolean NOT NULL DEFAULT false;
ALTER TABLE credit_holds ADD COLUMN api_key_id bigint;
