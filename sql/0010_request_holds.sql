-- Each in-flight request's credit hold is its own row, released by its own settlement (by hold
-- id) and by the scheduler only once the request is provably gone: ``expires_at`` is set past
-- the longest a request can live (MAX_STREAM_SECONDS and the timeouts around it), so a running
-- stream's hold is never freed under it. ``users.reserved_credits`` stays the sum of a user's
-- rows, changed in the same statements, so the hold check still locks a single row.
CREATE TABLE credit_holds (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    request_id text NOT NULL,
    amount numeric(20, 10) NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX credit_holds_expires_idx ON credit_holds (expires_at);
CREATE INDEX credit_holds_user_idx ON credit_holds (user_id);
