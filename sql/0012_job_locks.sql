-- Single-runner leases for scheduler jobs: a row per running job, held until it is released or
-- expires. A lease survives any connection pooler (a session advisory lock does not: behind
-- PgBouncer in transaction mode it lands on a server connection lent to others, and leaks), and a
-- runner that dies leaves a row that expires within one tick (see scheduler/leases.py).
CREATE TABLE job_locks (
    job text PRIMARY KEY,
    holder text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
