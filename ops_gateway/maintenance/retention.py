"""Data retention without long locks: drop whole old months of usage_records, delete other rows in batches.

usage_records is partitioned by month, so an expired month is one DROP TABLE instead of millions
of deletes; a month goes once all of it is older than USAGE_RETENTION_DAYS. Every other table is
deleted BATCH_SIZE rows per transaction. DDL waits at most LOCK_TIMEOUT for its lock and is
otherwise deferred to the next run, so it never queues in front of the request path. The credit
ledger (credit_transactions) is never deleted. A retention of 0 days keeps data forever.
"""

import re
from datetime import UTC, date, datetime, timedelta

from ops_gateway.core import db
from ops_gateway.maintenance import lock_waits, queries

BATCH_SIZE = 5000
LOCK_TIMEOUT = "2s"
MONTHS_AHEAD = 2  # partitions kept ready beyond the current month
PARTITION_NAME = re.compile(r"^usage_records_(\d{4})_(\d{2})$")

# (table, time column, setting) — deleted in batches.
BATCHED_TABLES = (
    ("usage_records_default", "created_at", "USAGE_RETENTION_DAYS"),
    ("usage_rollups", "bucket_start", "USAGE_RETENTION_DAYS"),
    ("usage_daily_totals", "day", "USAGE_RETENTION_DAYS"),
    ("usage_key_daily", "day", "USAGE_RETENTION_DAYS"),
    ("usage_tag_daily", "day", "USAGE_RETENTION_DAYS"),
    ("api_key_audit_logs", "created_at", "AUDIT_RETENTION_DAYS"),
    ("security_events", "created_at", "AUDIT_RETENTION_DAYS"),
    ("job_runs", "started_at", "JOB_RUN_RETENTION_DAYS"),
    ("request_payloads", "created_at", "PAYLOAD_RETENTION_DAYS"),
)


def add_months(first_of_month, months):
    """The first day of the month ``months`` after the given one."""
    index = first_of_month.year * 12 + first_of_month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def ensure_partitions(today):
    """Create this month's and the next MONTHS_AHEAD months' partitions; return (created, deferred)."""
    created, deferred = [], []
    this_month = today.replace(day=1)
    for offset in range(MONTHS_AHEAD + 1):
        month = add_months(this_month, offset)
        name = f"usage_records_{month:%Y_%m}"
        with lock_waits.deferred_if_locked(name, deferred, LOCK_TIMEOUT) as cur:
            if queries.table_missing(cur, name):
                queries.create_usage_partition(cur, month)
                created.append(name)
    return created, deferred


def drop_expired_partitions(cutoff):
    """Drop monthly partitions that end on or before ``cutoff``; return (dropped, deferred)."""
    with db.transaction() as cur:
        names = queries.usage_partitions(cur)
    dropped, deferred = [], []
    for name in names:
        match = PARTITION_NAME.match(name)
        if not match:
            continue  # the default partition is cleaned row by row
        month_end = add_months(date(int(match[1]), int(match[2]), 1), 1)
        if datetime(month_end.year, month_end.month, 1, tzinfo=UTC) > cutoff:
            continue
        # Dropping a partition takes an exclusive lock on usage_records: never wait long for it.
        with lock_waits.deferred_if_locked(name, deferred, LOCK_TIMEOUT) as cur:
            queries.drop_table(cur, name)
            dropped.append(name)
    return dropped, deferred


def delete_in_batches(table, column, cutoff, batch_size=BATCH_SIZE):
    """Delete rows older than ``cutoff``, one short transaction per batch; return the rows deleted."""
    total = 0
    while True:
        with db.transaction() as cur:
            deleted = queries.delete_batch_before(cur, table, column, cutoff, batch_size)
        total += deleted
        if deleted < batch_size:
            return total


def apply_retention(config, now=None):
    """The retention job body: partitions ahead, expired months dropped, old rows deleted; a report."""
    now = now or datetime.now(UTC)
    created, deferred = ensure_partitions(now.date())
    report = {"partitions_created": created, "partitions_dropped": [], "deleted": {}, "deferred": deferred}
    usage_days = config["USAGE_RETENTION_DAYS"]
    if usage_days:
        dropped, deferred = drop_expired_partitions(now - timedelta(days=usage_days))
        report["partitions_dropped"] = dropped
        report["deferred"] += deferred
    for table, column, setting in BATCHED_TABLES:
        days = config[setting]
        if days:
            report["deleted"][table] = delete_in_batches(table, column, now - timedelta(days=days))
    return report
