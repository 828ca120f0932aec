"""The database statistics the db_maintenance job reads: connections, slow and long-running
statements, index health, and ANALYZE of the hot tables.

Plain functions taking the cursor first and returning rows as dicts. Table names are the job's
own constants, always quoted as identifiers.
"""

import psycopg2.errors

from ops_gateway.maintenance.queries import identified

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
    cur.execute(identified(cur, "ANALYZE {}", table))
