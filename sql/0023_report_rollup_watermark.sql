-- Fresh spend reports: the rollups' watermark, and one usage record as a report counts it.

-- How far the spend reports' rollups (usage_key_daily, usage_tag_daily) reach: they hold exactly
-- the usage records created before rolled_up_at. The usage_rollup job moves it in the same
-- transaction as it rewrites them; reports show it, and fresh=true adds the records after it.
CREATE TABLE report_rollup_watermark (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),  -- one row
    rolled_up_at timestamptz NOT NULL
);

-- Rollups written before this file reach as far as their newest run.
INSERT INTO report_rollup_watermark (rolled_up_at)
SELECT max(computed_at) FROM usage_key_daily HAVING max(computed_at) IS NOT NULL;

-- Each usage record as one row of usage_key_daily's columns (its UTC day, the billed model, one
-- request, an error unless it succeeded), and once per tag for usage_tag_daily (an untagged record
-- under the NULL tag). The rollups sum these rows, fresh reports add the ones after the watermark,
-- so both count a record the same way.
CREATE VIEW usage_report_records AS
SELECT created_at, (created_at AT TIME ZONE 'UTC')::date AS day, user_id, api_key_id,
       coalesce(served_model, model) AS model, endpoint, 1 AS requests,
       (status <> 'success')::int AS errors, prompt_tokens, completion_tokens, cost, latency_ms AS latency_ms_sum, tags
FROM usage_records;

CREATE VIEW usage_report_tag_records AS
SELECT r.created_at, r.day, r.user_id, r.api_key_id, r.model, r.endpoint, tag, r.requests, r.errors,
       r.prompt_tokens, r.completion_tokens, r.cost, r.latency_ms_sum
FROM usage_report_records r
CROSS JOIN LATERAL unnest(CASE WHEN r.tags = '{}' THEN ARRAY[NULL::text] ELSE r.tags END) AS tag;
