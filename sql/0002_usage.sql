-- Usage records (partitioned by month), live per-day totals, rollups and the model catalogue.

CREATE TABLE usage_records (
    id bigint GENERATED ALWAYS AS IDENTITY,
    request_id text NOT NULL,
    user_id bigint NOT NULL,
    api_key_id bigint,
    model text NOT NULL,
    prompt_tokens integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    total_tokens integer NOT NULL DEFAULT 0,
    cost numeric(20, 10) NOT NULL DEFAULT 0,
    status text NOT NULL,
    upstream_status integer,
    error_code text,
    latency_ms double precision NOT NULL DEFAULT 0,
    upstream_latency_ms double precision,
    overhead_ms double precision,
    streamed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX usage_records_user_time_idx ON usage_records (user_id, created_at);
CREATE INDEX usage_records_time_idx ON usage_records (created_at);
CREATE INDEX usage_records_request_idx ON usage_records (request_id);

-- Rows outside every monthly partition land here instead of failing the insert.
CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT;

CREATE FUNCTION ensure_usage_partition(month_start date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    partition_name text := 'usage_records_' || to_char(month_start, 'YYYY_MM');
BEGIN
    IF to_regclass(partition_name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF usage_records FOR VALUES FROM (%L) TO (%L)',
            partition_name, month_start, (month_start + interval '1 month')::date);
    END IF;
    RETURN partition_name;
END $$;

SELECT ensure_usage_partition((date_trunc('month', now()) + make_interval(months => m))::date)
FROM generate_series(-1, 2) AS m;

-- Exact per-user, per-model, per-day totals kept in the same transaction as each charge,
-- so monitors read a few small rows instead of scanning usage_records.
CREATE TABLE usage_daily_totals (
    day date NOT NULL,
    user_id bigint NOT NULL,
    model text NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost numeric(24, 10) NOT NULL DEFAULT 0,
    last_request_at timestamptz,
    PRIMARY KEY (user_id, day, model)
);
CREATE INDEX usage_daily_totals_day_idx ON usage_daily_totals (day);

-- Recomputable aggregates written by the scheduler's usage_rollup job (idempotent upserts).
CREATE TABLE usage_rollups (
    granularity text NOT NULL CHECK (granularity IN ('hour', 'day')),
    bucket_start timestamptz NOT NULL,
    user_id bigint NOT NULL,
    model text NOT NULL,
    requests bigint NOT NULL,
    errors bigint NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost numeric(24, 10) NOT NULL,
    latency_ms_sum double precision NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (granularity, bucket_start, user_id, model)
);
CREATE INDEX usage_rollups_bucket_idx ON usage_rollups (granularity, bucket_start);

-- One shared model catalogue for every worker and instance (row id = 1).
CREATE TABLE model_catalog (
    id integer PRIMARY KEY CHECK (id = 1),
    models jsonb NOT NULL DEFAULT '[]',
    fetched_at timestamptz,
    last_attempt_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    refresh_count bigint NOT NULL DEFAULT 0,
    refresh_failures bigint NOT NULL DEFAULT 0,
    version bigint NOT NULL DEFAULT 0
);
INSERT INTO model_catalog (id) VALUES (1);
