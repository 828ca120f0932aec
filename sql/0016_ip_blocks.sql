-- One row per IP block (automatic after repeated authentication failures, or set by an admin),
-- written when the block is set, so GET /admin/blocked-ips lists every block exactly from
-- Postgres instead of scanning Redis (which a cluster cannot do in one call). Redis still
-- enforces the block (gw:ipblock key with the same TTL); unblocking removes both.
CREATE TABLE ip_blocks (
    address inet PRIMARY KEY,
    reason text NOT NULL,
    actor text NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX ip_blocks_expires_idx ON ip_blocks (expires_at);
