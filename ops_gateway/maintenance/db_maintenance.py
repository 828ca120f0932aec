"""Database maintenance: pool health, slow queries, index health and ANALYZE of the hot tables.

Everything here reads the server's own statistics views, limited to the gateway's schema, and
reports findings; only ANALYZE changes anything (planner statistics), each table under a short
lock timeout so it never waits behind a long transaction.
"""

import time

import psycopg2.errors
from psycopg2 import sql

from ops_gateway.core import db

HOT_TABLES = (
    "users",
    "api_keys",
    "usage_records",
    "usage_daily_totals",
    "usage_rollups",
    "credit_transactions",
    "api_key_audit_logs",
)
LOCK_TIMEOUT = "2s"
REPORT_LIMIT = 20
# A table read mostly by sequential scans this large is probably missing an index.
SEQ_SCAN_MIN_ROWS = 10000

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


def pool_health(database, cur):
    """This process's pool, a probe round trip, and the server's connections against max_connections."""
    started = time.perf_counter()
    cur.execute("SELECT 1")
    probe_ms = round((time.perf_counter() - started) * 1000, 2)
    cur.execute(_SERVER_CONNECTIONS)
    server = dict(cur.fetchone())
    server["saturation_percent"] = round(100 * server["total"] / server["max_connections"], 1)
    return {"process_pool": database.stats(), "probe_ms": probe_ms, "server": server}


def slow_queries(cur, threshold_ms):
    """Slowest statements from pg_stat_statements, or statements running long right now when it is unavailable."""
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS installed")
    note = "pg_stat_statements is not installed"
    if cur.fetchone()["installed"]:
        cur.execute("SAVEPOINT slow_queries")
        try:
            cur.execute(_PG_STAT_STATEMENTS, (threshold_ms, REPORT_LIMIT))
            return {"source": "pg_stat_statements", "threshold_ms": threshold_ms, "queries": cur.fetchall()}
        except psycopg2.errors.ObjectNotInPrerequisiteState:
            cur.execute("ROLLBACK TO SAVEPOINT slow_queries")
            note = "pg_stat_statements is installed but not in shared_preload_libraries"
    cur.execute(_RUNNING_STATEMENTS, (threshold_ms, REPORT_LIMIT))
    return {"source": "pg_stat_activity", "note": note, "threshold_ms": threshold_ms, "queries": cur.fetchall()}


def index_health(cur):
    """Unused, missing and invalid indexes on the gateway's tables."""
    cur.execute("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
    stats_reset = cur.fetchone()["stats_reset"]
    report = {"statistics_since": stats_reset.isoformat() if stats_reset else "server start"}
    for key, statement, params in (
        ("unused", _UNUSED_INDEXES, (REPORT_LIMIT,)),
        ("unindexed_foreign_keys", _UNINDEXED_FOREIGN_KEYS, (REPORT_LIMIT,)),
        ("seq_scan_heavy_tables", _SEQ_SCAN_HEAVY, (SEQ_SCAN_MIN_ROWS, REPORT_LIMIT)),
        ("invalid", _INVALID_INDEXES, (REPORT_LIMIT,)),
    ):
        cur.execute(statement, params)
        report[key] = cur.fetchall()
    return report


def analyze_hot_tables():
    """ANALYZE each hot table in its own short transaction; return (analyzed, deferred)."""
    analyzed, deferred = [], []
    for table in HOT_TABLES:
        try:
            with db.transaction() as cur:
                cur.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cur.execute("SET LOCAL statement_timeout = '5min'")
                # as_string: ops_gateway.db's slow-query logger only handles plain strings
                cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)).as_string(cur))
            analyzed.append(table)
        except psycopg2.errors.LockNotAvailable:
            deferred.append(table)
    return analyzed, deferred


def run_maintenance(slow_query_ms):
    """The db_maintenance job body: every check's findings, and a count of the problems found."""
    with db.transaction() as cur:
        report = {
            "pool": pool_health(db.get_database(), cur),
            "slow_queries": slow_queries(cur, slow_query_ms),
            "indexes": index_health(cur),
        }
    report["analyzed"], report["analyze_deferred"] = analyze_hot_tables()
    indexes = report["indexes"]
    report["problems"] = (
        len(report["slow_queries"]["queries"])
        + len(indexes["unindexed_foreign_keys"])
        + len(indexes["seq_scan_heavy_tables"])
        + len(indexes["invalid"])
    )
    return report
