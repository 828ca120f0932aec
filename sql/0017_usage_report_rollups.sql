-- Daily spend rollups behind GET /admin/reports/usage and GET /user/usage, rewritten for the
-- recent days by the scheduler's usage_rollup job (delete + insert of whole days, idempotent).
-- usage_key_daily: one row per (day, user, key, model); usage_tag_daily: the same split by each
-- request tag (a request with two tags counts under both; NULL tag = untagged requests).
-- A report of 90 days reads ~90 x (user, key, model) rows instead of every usage record.
CREATE TABLE usage_key_daily (
    day date NOT NULL,
    user_id bigint NOT NULL,
    api_key_id bigint,
    model text NOT NULL,
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost numeric(24, 10) NOT NULL,
    latency_ms_sum double precision NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_key_daily_day_user_idx ON usage_key_daily (day, user_id);
CREATE INDEX usage_key_daily_user_day_idx ON usage_key_daily (user_id, day);

CREATE TABLE usage_tag_daily (
    day date NOT NULL,
    user_id bigint NOT NULL,
    api_key_id bigint,
    model text NOT NULL,
    tag text,
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost numeric(24, 10) NOT NULL,
    latency_ms_sum double precision NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_tag_daily_day_user_idx ON usage_tag_daily (day, user_id);
CREATE INDEX usage_tag_daily_user_day_idx ON usage_tag_daily (user_id, day);

-- Backfill every day already recorded (the job then keeps the recent days current).
INSERT INTO usage_key_daily (day, user_id, api_key_id, model, requests, errors, prompt_tokens,
                             completion_tokens, cost, latency_ms_sum)
SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, api_key_id, model, count(*),
       count(*) FILTER (WHERE status <> 'success'), sum(prompt_tokens), sum(completion_tokens),
       sum(cost), sum(latency_ms)
FROM usage_records GROUP BY 1, 2, 3, 4;

INSERT INTO usage_tag_daily (day, user_id, api_key_id, model, tag, requests, errors, prompt_tokens,
                             completion_tokens, cost, latency_ms_sum)
SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, api_key_id, model, tag, count(*),
       count(*) FILTER (WHERE status <> 'success'), sum(prompt_tokens), sum(completion_tokens),
       sum(cost), sum(latency_ms)
FROM usage_records
CROSS JOIN LATERAL unnest(CASE WHEN tags = '{}' THEN ARRAY[NULL::text] ELSE tags END) AS tag
GROUP BY 1, 2, 3, 4, 5;
