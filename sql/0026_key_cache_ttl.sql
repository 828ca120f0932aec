-- A key's default response-cache TTL (issue 27): its requests are cached for this many seconds
-- unless they send X-Gateway-Cache-TTL or Cache-Control: no-store; NULL: only when asked.
ALTER TABLE api_keys ADD COLUMN cache_ttl_seconds integer CHECK (cache_ttl_seconds > 0);
