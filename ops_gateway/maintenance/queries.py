"""The maintenance domain's SQL: rollups, retention, backups, the catalogue's age and database statistics.

Plain functions taking the cursor first and returning rows as dicts (or counts). Table and
database names are code's own constants or generated here, always quoted as identifiers.
"""

import psycopg2.errors
from psycopg2 import sql


def _identified(cur, template, *names):
    """A statement with quoted identifiers, as the plain string the slow-query logger prints."""
    return sql.SQL(template).format(*map(sql.Identifier, names)).as_string(cur)


# Usage rollups

_DELETE_ROLLUPS = """
DELETE FROM usage_rollups WHERE granularity = %(granularity)s
  AND bucket_start >= %(start)s AND bucket_start < %(end)s
"""

_INSERT_ROLLUPS = """
INSERT INTO usage_rollups (granularity, bucket_start, user_id, model, requests, errors,
                           prompt_tokens, completion_tokens, cost, latency_ms_sum)
SELECT %(granularity)s, date_trunc(%(granularity)s, created_at, 'UTC'), user_id, model,
       count(*), count(*) FILTER (WHERE status <> 'success'),
       sum(prompt_tokens), sum(completion_tokens), sum(cost), sum(latency_ms)
FROM usage_records
WHERE created_at >= %(start)s AND created_at < %(end)s
GROUP BY 2, 3, 4
"""


def newest_rollup_bucket(cur, granularity):
    """Start of the newest rollup bucket of a granularity, or None."""
    cur.execute("SELECT max(bucket_start) AS newest FROM usage_rollups WHERE granularity = %s", (granularity,))
    return cur.fetchone()["newest"]


def rewrite_rollups(cur, granularity, start, end):
    """Replace every rollup bucket of a granularity in [start, end) by its recomputation; the rows written."""
    params = {"granularity": granularity, "start": start, "end": end}
    cur.execute(_DELETE_ROLLUPS, params)
    cur.execute(_INSERT_ROLLUPS, params)
    return cur.rowcount


# Spend-report rollups (sql/0017, 0018): whole UTC days per (user, key, model, endpoint), and per
# tag. Their model is the billed one (the one that answered), as in usage_daily_totals.

_REPORT_METRICS = """count(*), count(*) FILTER (WHERE status <> 'success'), sum(prompt_tokens),
       sum(completion_tokens), sum(cost), sum(latency_ms)"""
_REPORT_GROUP = "(created_at AT TIME ZONE 'UTC')::date, user_id, api_key_id, coalesce(served_model, model), endpoint"
_REPORT_RANGE = "created_at >= %(start)s AND created_at < %(end)s"

_INSERT_KEY_DAILY = f"""
INSERT INTO usage_key_daily (day, user_id, api_key_id, model, endpoint, requests, errors, prompt_tokens,
                             completion_tokens, cost, latency_ms_sum)
SELECT {_REPORT_GROUP}, {_REPORT_METRICS}
FROM usage_records WHERE {_REPORT_RANGE}
GROUP BY 1, 2, 3, 4, 5
"""

# An untagged request counts under the NULL tag, so a tag report still adds up to every request.
_INSERT_TAG_DAILY = f"""
INSERT INTO usage_tag_daily (day, user_id, api_key_id, model, endpoint, tag, requests, errors, prompt_tokens,
                             completion_tokens, cost, latency_ms_sum)
SELECT {_REPORT_GROUP}, tag, {_REPORT_METRICS}
FROM usage_records
CROSS JOIN LATERAL unnest(CASE WHEN tags = '{{}}' THEN ARRAY[NULL::text] ELSE tags END) AS tag
WHERE {_REPORT_RANGE}
GROUP BY 1, 2, 3, 4, 5, 6
"""


def rewrite_report_days(cur, start, end):
    """Replace the report rollups of the UTC days in [start, end) (midnights); the rows written."""
    params = {"start": start, "end": end, "first": start.date(), "stop": end.date()}
    written = 0
    for table, insert in (("usage_key_daily", _INSERT_KEY_DAILY), ("usage_tag_daily", _INSERT_TAG_DAILY)):
        cur.execute(f"DELETE FROM {table} WHERE day >= %(first)s AND day < %(stop)s", params)
        cur.execute(insert, params)
        written += cur.rowcount
    return written


# Retention

_DELETE_BATCH = "DELETE FROM {} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {} WHERE {} < %s LIMIT %s))"


def table_missing(cur, name):
    """Whether no table of this name exists."""
    cur.execute("SELECT to_regclass(%s) IS NULL AS missing", (name,))
    return cur.fetchone()["missing"]


def create_usage_partition(cur, month):
    """Create the usage_records partition of the month starting on ``month``."""
    cur.execute("SELECT ensure_usage_partition(%s)", (month,))


def usage_partitions(cur):
    """Names of usage_records' partitions, sorted."""
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'usage_records'::regclass ORDER BY c.relname"
    )
    return [row["relname"] for row in cur.fetchall()]


def drop_table(cur, name):
    """DROP TABLE name."""
    cur.execute(_identified(cur, "DROP TABLE {}", name))


def delete_batch_before(cur, table, column, cutoff, batch_size):
    """Delete up to ``batch_size`` rows of ``table`` whose ``column`` is before ``cutoff``; how many went."""
    cur.execute(_identified(cur, _DELETE_BATCH, table, table, column), (cutoff, batch_size))
    return cur.rowcount


# Backups


def count_rows(cur, tables):
    """{table: row count} for each table."""
    counts = {}
    for table in tables:
        cur.execute(_identified(cur, "SELECT count(*) AS n FROM {}", table))
        counts[table] = cur.fetchone()["n"]
    return counts


def server_major(cur):
    """The server's major version number."""
    cur.execute("SHOW server_version_num")
    return int(cur.fetchone()["server_version_num"]) // 10000


def export_snapshot(cur):
    """{snapshot, db}: this transaction's snapshot exported for pg_dump, and the database's name."""
    cur.execute("SELECT pg_export_snapshot() AS snapshot, current_database() AS db")
    return cur.fetchone()


def current_database(cur):
    """The connected database's name."""
    cur.execute("SELECT current_database() AS db")
    return cur.fetchone()["db"]


def databases_named_like(cur, prefix):
    """Names of the databases starting with ``prefix``."""
    cur.execute("SELECT datname FROM pg_database WHERE left(datname, %s) = %s", (len(prefix), prefix))
    return [row["datname"] for row in cur.fetchall()]


def create_database_from_template0(cur, name):
    """CREATE DATABASE name TEMPLATE template0 (outside a transaction)."""
    cur.execute(_identified(cur, "CREATE DATABASE {} TEMPLATE template0", name))


def drop_database(cur, name):
    """Drop the database if it exists, ending its sessions (outside a transaction)."""
    cur.execute(_identified(cur, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name))


# The model catalogue


def catalog_fetch(cur):
    """{fetched_at, models: how many} of the shared model catalogue, or None."""
    cur.execute("SELECT fetched_at, jsonb_array_length(models) AS models FROM model_catalog WHERE id = 1")
    return cur.fetchone()


# Database statistics (db_maintenance)

_SERVER_CONNECTIONS = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle') AS idle,
       count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS idle_in_transaction,
       current_setting('max_connections')::int AS max_connections
FROM pg_stat_activity WHERE backend_type = 'client backend'
"""

_PG_STAT_STATEMENTS = """
SELECT queryid, left(query, 300) AS query, calls,
       round(mean_exec_time::numeric, 1)::float8 AS mean_ms, round(total_exec_time::numeric, 1)::float8 AS total_ms
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND mean_exec_time >= %s
ORDER BY mean_exec_time DESC LIMIT %s
"""

_RUNNING_STATEMENTS = """
SELECT pid, state, round(extract(epoch FROM now() - query_start) * 1000)::float8 AS running_ms,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()
  AND now() - query_start >= make_interval(secs => %s / 1000.0)
ORDER BY query_start LIMIT %s
"""

# Indexes never scanned since statistics were reset; a partitioned index counts its partitions' scans.
_UNUSED_INDEXES = """
WITH usage AS (
    SELECT coalesce(p.inhparent, s.indexrelid) AS indexrelid, sum(s.idx_scan) AS scans,
           sum(pg_relation_size(s.indexrelid)) AS bytes
    FROM pg_stat_user_indexes s LEFT JOIN pg_inherits p ON p.inhrelid = s.indexrelid
    WHERE s.schemaname = current_schema()
    GROUP BY 1
)
SELECT ic.relname AS index, tc.relname AS table, u.bytes
FROM usage u
JOIN pg_index i ON i.indexrelid = u.indexrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
WHERE u.scans = 0 AND NOT i.indisunique AND NOT i.indisprimary AND NOT tc.relispartition
ORDER BY u.bytes DESC, ic.relname LIMIT %s
"""

# Foreign keys whose columns do not lead any index: deletes on the referenced table scan this one.
_UNINDEXED_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text AS table, c.conname AS constraint,
       (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS columns
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace AND c.conparentid = 0
  AND NOT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = c.conrelid
        AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] @> c.conkey
        AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] <@ c.conkey)
ORDER BY 1, 2 LIMIT %s
"""

_SEQ_SCAN_HEAVY = """
SELECT relname AS table, seq_scan, coalesce(idx_scan, 0) AS idx_scan, n_live_tup AS rows
FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND n_live_tup >= %s AND seq_scan > coalesce(idx_scan, 0)
ORDER BY seq_tup_read DESC LIMIT %s
"""

_INVALID_INDEXES = """
SELECT ic.relname AS index, tc.relname AS table
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
WHERE NOT i.indisvalid AND ic.relnamespace = current_schema()::regnamespace
ORDER BY 1 LIMIT %s
"""


def round_trip(cur):
    """One trivial statement (a probe of the connection)."""
    cur.execute("SELECT 1")


def server_connections(cur):
    """The server's client connections by state, and max_connections."""
    cur.execute(_SERVER_CONNECTIONS)
    return dict(cur.fetchone())


def pg_stat_statements_installed(cur):
    """Whether the pg_stat_statements extension is created in this database."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS installed")
    return cur.fetchone()["installed"]


def slowest_statements(cur, threshold_ms, limit):
    """Statements with a mean time of ``threshold_ms`` or more (pg_stat_statements), slowest first; None when
    the extension is installed but not loaded (shared_preload_libraries)."""
    cur.execute("SAVEPOINT slow_queries")
    try:
        cur.execute(_PG_STAT_STATEMENTS, (threshold_ms, limit))
    except psycopg2.errors.ObjectNotInPrerequisiteState:
        cur.execute("ROLLBACK TO SAVEPOINT slow_queries")
        return None
    return cur.fetchall()


def long_running_statements(cur, threshold_ms, limit):
    """Statements running for ``threshold_ms`` or more right now, oldest first."""
    cur.execute(_RUNNING_STATEMENTS, (threshold_ms, limit))
    return cur.fetchall()


def statistics_reset_at(cur):
    """When this database's statistics were last reset (None: since the server started)."""
    cur.execute("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
    return cur.fetchone()["stats_reset"]


def unused_indexes(cur, limit):
    """Non-unique indexes never scanned, largest first."""
    cur.execute(_UNUSED_INDEXES, (limit,))
    return cur.fetchall()


def unindexed_foreign_keys(cur, limit):
    """Foreign keys whose columns lead no index."""
    cur.execute(_UNINDEXED_FOREIGN_KEYS, (limit,))
    return cur.fetchall()


def seq_scan_heavy_tables(cur, min_rows, limit):
    """Tables of ``min_rows`` or more read more often by sequential than by index scans."""
    cur.execute(_SEQ_SCAN_HEAVY, (min_rows, limit))
    return cur.fetchall()


def invalid_indexes(cur, limit):
    """Indexes left invalid (a failed concurrent build)."""
    cur.execute(_INVALID_INDEXES, (limit,))
    return cur.fetchall()


def analyze(cur, table):
    """ANALYZE one table."""
    cur.execute(_identified(cur, "ANALYZE {}", table))
