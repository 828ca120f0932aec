-- Payload logging (issue 27), opt-in per user, org or key: the request and response bodies of a
-- settled request, secrets redacted and each capped, kept PAYLOAD_RETENTION_DAYS by the retention
-- job. Never on by default.
ALTER TABLE users ADD COLUMN log_payloads boolean NOT NULL DEFAULT false;
ALTER TABLE organizations ADD COLUMN log_payloads boolean NOT NULL DEFAULT false;
ALTER TABLE api_keys ADD COLUMN log_payloads boolean NOT NULL DEFAULT false;

CREATE TABLE request_payloads (
    settlement_id uuid PRIMARY KEY,  -- its usage record's
    user_id bigint NOT NULL,
    request_body text NOT NULL,
    response_body text NOT NULL,
    truncated boolean NOT NULL DEFAULT false,  -- a body was cut at PAYLOAD_MAX_BYTES
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX request_payloads_created_idx ON request_payloads (created_at);
