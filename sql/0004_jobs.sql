-- Scheduler leases and the index retention needs on job history.

-- The last scheduled tick each job ran for. A clock process claims a tick here while holding the
-- job's advisory lock, so a second clock that fires for the same tick finds it taken and skips
-- (see scheduler/runner.py).
CREATE TABLE job_leases (
    job text PRIMARY KEY,
    last_tick timestamptz NOT NULL,
    runner text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Retention deletes job_runs by age across every job.
CREATE INDEX job_runs_started_idx ON job_runs (started_at);
