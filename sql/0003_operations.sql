-- Security events, alerts and scheduler job history.

CREATE TABLE security_events (
    id bigserial PRIMARY KEY,
    type text NOT NULL,
    user_id bigint,
    api_key_id bigint,
    ip inet,
    details jsonb NOT NULL DEFAULT '{}',
    -- Repeated events of one kind in one minute fold into one row (see dedupe_key).
    count integer NOT NULL DEFAULT 1,
    dedupe_key text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_events_time_idx ON security_events (created_at DESC, id DESC);
CREATE INDEX security_events_type_time_idx ON security_events (type, created_at DESC);
CREATE INDEX security_events_user_time_idx ON security_events (user_id, created_at DESC);
CREATE INDEX security_events_ip_time_idx ON security_events (ip, created_at DESC);

CREATE TABLE key_ip_history (
    api_key_id bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    ip inet NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, ip)
);

CREATE TABLE alerts (
    id bigserial PRIMARY KEY,
    rule text NOT NULL,
    status text NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity text NOT NULL DEFAULT 'warning',
    message text NOT NULL,
    value double precision,
    threshold double precision,
    details jsonb NOT NULL DEFAULT '{}',
    fired_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    last_notified_at timestamptz,
    notifications integer NOT NULL DEFAULT 0
);
-- At most one firing alert per rule: one incident, one row, one message.
CREATE UNIQUE INDEX alerts_one_firing_per_rule ON alerts (rule) WHERE status = 'firing';
CREATE INDEX alerts_fired_idx ON alerts (fired_at DESC);

CREATE TABLE job_runs (
    id bigserial PRIMARY KEY,
    job text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status text NOT NULL CHECK (status IN ('running', 'success', 'failed', 'skipped')),
    duration_ms double precision,
    details jsonb NOT NULL DEFAULT '{}',
    error text,
    runner text NOT NULL
);
CREATE INDEX job_runs_job_time_idx ON job_runs (job, started_at DESC);
