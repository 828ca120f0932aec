-- Per-UTC-day counts of api_key_audit_logs rows, so the audit-log endpoints return an exact
-- total_logs without counting a million rows: ops_gateway/audit.py adds up these counters for the
-- whole days of a request's range and counts rows only on its partial first and last days.
-- Statement-level triggers keep them exact in the writer's own transaction, with one grouped upsert
-- per counter table however many rows a statement touches (the retention job's batched deletes,
-- bulk loads). A counter row exists only while its count is above zero.

-- Totals without a user or key filter. One action's rows of a day are spread over 16 slots
-- (id % 16), so concurrent writers of the same action (every anonymous auth_failure, say) rarely
-- wait on the same counter row until they commit.
CREATE TABLE audit_log_daily_counts (
    action text NOT NULL,
    day date NOT NULL,
    slot smallint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (action, day, slot)
);

-- Totals for a user_id and/or key_id filter. Rows with neither (anonymous auth failures) are left
-- out: no such filter can select them.
CREATE TABLE audit_log_key_counts (
    user_id bigint,
    api_key_id bigint,
    action text NOT NULL,
    day date NOT NULL,
    n bigint NOT NULL
);
CREATE UNIQUE INDEX audit_log_key_counts_key ON audit_log_key_counts (user_id, api_key_id, action, day)
    NULLS NOT DISTINCT;
CREATE INDEX audit_log_key_counts_api_key_idx ON audit_log_key_counts (api_key_id);

-- Writers wait until the backfill and the triggers below are committed: no row is missed or counted twice.
LOCK TABLE api_key_audit_logs IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO audit_log_daily_counts (action, day, slot, n)
SELECT action, (created_at AT TIME ZONE 'UTC')::date, id % 16, count(*)
FROM api_key_audit_logs GROUP BY 1, 2, 3;

INSERT INTO audit_log_key_counts (user_id, api_key_id, action, day, n)
SELECT user_id, api_key_id, action, (created_at AT TIME ZONE 'UTC')::date, count(*)
FROM api_key_audit_logs WHERE user_id IS NOT NULL OR api_key_id IS NOT NULL GROUP BY 1, 2, 3, 4;

-- Static SQL (plans cached per connection) keeps the cost of an audited request at ~0.1 ms. The
-- upserts lock counter rows in one order (daily table first, each sorted), so concurrent
-- statements take them in the same order instead of deadlocking.
CREATE FUNCTION count_added_audit_logs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log_daily_counts AS c (action, day, slot, n)
    SELECT action, (created_at AT TIME ZONE 'UTC')::date, id % 16, count(*)
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (action, day, slot) DO UPDATE SET n = c.n + EXCLUDED.n;

    INSERT INTO audit_log_key_counts AS c (user_id, api_key_id, action, day, n)
    SELECT user_id, api_key_id, action, (created_at AT TIME ZONE 'UTC')::date, count(*)
    FROM new_rows WHERE user_id IS NOT NULL OR api_key_id IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, api_key_id, action, day) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

-- The same with negative counts; counters that reach zero are deleted (found by the ctid their
-- upsert returned: this transaction holds their lock, so nobody else can have changed them).
CREATE FUNCTION count_removed_audit_logs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    emptied tid[];
BEGIN
    WITH counted AS (
        INSERT INTO audit_log_daily_counts AS c (action, day, slot, n)
        SELECT action, (created_at AT TIME ZONE 'UTC')::date, id % 16, -count(*)
        FROM old_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (action, day, slot) DO UPDATE SET n = c.n + EXCLUDED.n
        RETURNING c.ctid, c.n)
    SELECT array_agg(ctid) FILTER (WHERE n = 0) INTO emptied FROM counted;
    DELETE FROM audit_log_daily_counts WHERE ctid = ANY (emptied);

    WITH counted AS (
        INSERT INTO audit_log_key_counts AS c (user_id, api_key_id, action, day, n)
        SELECT user_id, api_key_id, action, (created_at AT TIME ZONE 'UTC')::date, -count(*)
        FROM old_rows WHERE user_id IS NOT NULL OR api_key_id IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (user_id, api_key_id, action, day) DO UPDATE SET n = c.n + EXCLUDED.n
        RETURNING c.ctid, c.n)
    SELECT array_agg(ctid) FILTER (WHERE n = 0) INTO emptied FROM counted;
    DELETE FROM audit_log_key_counts WHERE ctid = ANY (emptied);
    RETURN NULL;
END
$$;

-- A trigger with transition tables serves one event and sees one side of an UPDATE: an update
-- (ON DELETE SET NULL from users or api_keys, a corrected created_at) removes the old rows and
-- adds the new ones.
CREATE TRIGGER audit_log_counts_insert AFTER INSERT ON api_key_audit_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_added_audit_logs();
CREATE TRIGGER audit_log_counts_update_new AFTER UPDATE ON api_key_audit_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_added_audit_logs();
CREATE TRIGGER audit_log_counts_update_old AFTER UPDATE ON api_key_audit_logs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_removed_audit_logs();
CREATE TRIGGER audit_log_counts_delete AFTER DELETE ON api_key_audit_logs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_removed_audit_logs();

CREATE FUNCTION forget_audit_log_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE audit_log_daily_counts, audit_log_key_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER audit_log_counts_truncate AFTER TRUNCATE ON api_key_audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION forget_audit_log_counts();
