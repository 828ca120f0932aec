-- System-wide usage per 5-minute bucket for the dashboard's 24-hour charts.
-- A bucket is written once, after it can no longer change (see ops_gateway/dashboard_series.py),
-- so the charts read 288 small rows instead of a day of usage_records.
CREATE TABLE usage_5m (
    bucket_start timestamptz PRIMARY KEY,
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost numeric(24, 10) NOT NULL,
    latency_p95_ms double precision,
    computed_at timestamptz NOT NULL DEFAULT now()
);
