-- The spend reports' rollups per endpoint, their model the billed one (served_model, else model):
-- rewrite every day since 0018 added the columns, which the usage_rollup job may have rolled up
-- as chat under the model asked for. Days before 0018 held only chat requests billed for the
-- model they asked for, so their rows are already right.
CREATE TEMPORARY TABLE endpoint_days ON COMMIT DROP AS
SELECT (applied_at AT TIME ZONE 'UTC')::date AS first_day,
       (applied_at AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC' AS first_moment
FROM schema_migrations WHERE name = '0018_endpoints.sql';

DELETE FROM usage_key_daily WHERE day >= (SELECT first_day FROM endpoint_days);
DELETE FROM usage_tag_daily WHERE day >= (SELECT first_day FROM endpoint_days);

INSERT INTO usage_key_daily (day, user_id, api_key_id, model, endpoint, requests, errors, prompt_tokens,
                             completion_tokens, cost, latency_ms_sum)
SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, api_key_id, coalesce(served_model, model), endpoint,
       count(*), count(*) FILTER (WHERE status <> 'success'), sum(prompt_tokens), sum(completion_tokens),
       sum(cost), sum(latency_ms)
FROM usage_records WHERE created_at >= (SELECT first_moment FROM endpoint_days)
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO usage_tag_daily (day, user_id, api_key_id, model, endpoint, tag, requests, errors, prompt_tokens,
                             completion_tokens, cost, latency_ms_sum)
SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, api_key_id, coalesce(served_model, model), endpoint, tag,
       count(*), count(*) FILTER (WHERE status <> 'success'), sum(prompt_tokens), sum(completion_tokens),
       sum(cost), sum(latency_ms)
FROM usage_records
CROSS JOIN LATERAL unnest(CASE WHEN tags = '{}' THEN ARRAY[NULL::text] ELSE tags END) AS tag
WHERE created_at >= (SELECT first_moment FROM endpoint_days)
GROUP BY 1, 2, 3, 4, 5, 6;
