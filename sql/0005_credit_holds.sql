-- When a user's newest credit hold was taken. Holds exist only while requests are in flight; a
-- hold older than any request can live (a worker killed mid-request, a database outage between
-- hold and settlement) is released by the scheduler's release_stale_holds step.
ALTER TABLE users ADD COLUMN reserved_at timestamptz;
