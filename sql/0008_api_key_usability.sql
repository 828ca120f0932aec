-- "Is this key usable now": one rule for every statement that accepts a key (the API's key
-- lookup, the dashboard's session re-check), judged by the database's clock, which also set
-- grace_until. NULL when usable, else why not. A plain SQL expression the planner inlines.
CREATE FUNCTION api_key_rejection(key_status text, grace_until timestamptz, expires_at timestamptz, user_status text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN key_status = 'revoked' THEN 'revoked'
                WHEN key_status = 'rotated' AND (grace_until IS NULL OR grace_until <= now()) THEN 'rotated'
                WHEN expires_at <= now() THEN 'expired'
                WHEN user_status <> 'active' THEN 'user_suspended' END
$$;
