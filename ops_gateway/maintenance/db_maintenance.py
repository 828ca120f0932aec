"""Database maintenance: pool health, slow queries, index health and ANALYZE of the hot tables.

Everything here reads the server's own statistics views, limited to the gateway's schema, and
reports findings; only ANALYZE changes anything (planner statistics), each table under a short
lock timeout so it never waits behind a long transaction.
"""

import time

from ops_gateway.core import db
from ops_gateway.maintenance import lock_waits
from ops_gateway.maintenance import statistics_queries as queries

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
ANALYZE_TIMEOUT = "5min"
REPORT_LIMIT = 20
# A table read mostly by sequential scans this large is probably missing an index.
SEQ_SCAN_MIN_ROWS = 10000


def pool_health(database, cur):
    """This process's pool, a probe round trip, and the server's connections against max_connections."""
    started = time.perf_counter()
    queries.round_trip(cur)
    probe_ms = round((time.perf_counter() - started) * 1000, 2)
    server = queries.server_connections(cur)
    server["saturation_percent"] = round(100 * server["total"] / server["max_connections"], 1)
    return {"process_pool": database.stats(), "probe_ms": probe_ms, "server": server}


def slow_queries(cur, threshold_ms):
    """Slowest statements from pg_stat_statements, or statements running long right now when it is unavailable."""
    note = "pg_stat_statements is not installed"
    if queries.pg_stat_statements_installed(cur):
        slowest = queries.slowest_statements(cur, threshold_ms, REPORT_LIMIT)
        if slowest is not None:
            return {"source": "pg_stat_statements", "threshold_ms": threshold_ms, "queries": slowest}
        note = "pg_stat_statements is installed but not in shared_preload_libraries"
    running = queries.long_running_statements(cur, threshold_ms, REPORT_LIMIT)
    return {"source": "pg_stat_activity", "note": note, "threshold_ms": threshold_ms, "queries": running}


def index_health(cur):
    """Unused, missing and invalid indexes on the gateway's tables."""
    stats_reset = queries.statistics_reset_at(cur)
    return {
        "statistics_since": stats_reset.isoformat() if stats_reset else "server start",
        "unused": queries.unused_indexes(cur, REPORT_LIMIT),
        "unindexed_foreign_keys": queries.unindexed_foreign_keys(cur, REPORT_LIMIT),
        "seq_scan_heavy_tables": queries.seq_scan_heavy_tables(cur, SEQ_SCAN_MIN_ROWS, REPORT_LIMIT),
        "invalid": queries.invalid_indexes(cur, REPORT_LIMIT),
    }


def analyze_hot_tables():
    """ANALYZE each hot table in its own short transaction; return (analyzed, deferred)."""
    analyzed, deferred = [], []
    for table in HOT_TABLES:
        with lock_waits.deferred_if_locked(table, deferred, LOCK_TIMEOUT) as cur:
            db.set_local(cur, "statement_timeout", ANALYZE_TIMEOUT)
            queries.analyze(cur, table)
            analyzed.append(table)
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
