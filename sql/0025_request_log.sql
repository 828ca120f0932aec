-- The request log (issue 27) reads usage_records: each settled request also keeps the client's
-- address and whether the response cache answered it.
ALTER TABLE usage_records
    ADD COLUMN client_ip inet,
    ADD COLUMN cache_hit boolean NOT NULL DEFAULT false;
CREATE INDEX usage_records_key_time_idx ON usage_records (api_key_id, created_at);
